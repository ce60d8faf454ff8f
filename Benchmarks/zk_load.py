#!/usr/bin/env python3
"""kazoo-based load client for ZooKeeper-protocol servers.

    zk_load.py HOST:PORT --op create|setData|getData|exists|getChildren|delete
               --ops N --mode sync|async [--clients C] [--window W]
               [--value-size B] [--timeout SECONDS]

Performs N operations (split evenly over C clients, each with its own session
and thread) under a unique root /zkload-<random>, then prints one line:

    op=create mode=sync ops=N seconds=S ops_per_sec=X p50_ms=A p99_ms=B clients=C errors=E

sync:  each client issues one request at a time; latency is measured around
       each blocking call.
async: each client keeps up to W (default 64) requests outstanding via the
       kazoo *_async calls; latency is measured from send to completion
       callback.
Setup (the nodes that setData/getData/exists/getChildren/delete act on) and
cleanup are not timed.  Exits 1 if any operation failed or the run exceeded
--timeout.
"""

import argparse
import sys
import threading
import time
import uuid

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

OPS = ("create", "setData", "getData", "exists", "getChildren", "delete")
POOL = 1000  # distinct nodes per client for setData/getData/exists
CHILDREN = 10  # children of the getChildren target


def percentile(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    idx = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[idx]


def pipeline(client, paths, make_call, window, deadline):
    """Run make_call(path) -> AsyncResult for every path with at most `window`
    outstanding.  Returns (latencies_seconds, errors)."""
    sem = threading.Semaphore(window)
    lat = []
    errs = [0]
    lock = threading.Lock()
    done = threading.Event()
    remaining = [len(paths)]
    if not paths:
        return lat, 0

    def completed(start):
        def cb(ar):
            t = time.perf_counter() - start
            bad = ar.exception is not None
            with lock:
                lat.append(t)
                if bad:
                    errs[0] += 1
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()
            sem.release()
        return cb

    for p in paths:
        while not sem.acquire(timeout=1.0):
            if time.monotonic() > deadline:
                raise TimeoutError("async pipeline exceeded the time limit")
        start = time.perf_counter()
        make_call(p).rawlink(completed(start))
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise TimeoutError("async pipeline exceeded the time limit")
    return lat, errs[0]


class Worker(object):
    def __init__(self, args, idx, root, value):
        self.args, self.idx, self.value = args, idx, value
        self.dir = "%s/w%d" % (root, idx)
        self.n = args.ops // args.clients + (1 if idx < args.ops % args.clients else 0)
        self.client = KazooClient(hosts=args.hostport, timeout=15.0)
        self.lat = []
        self.errors = 0
        self.exc = None
        self.setup_exc = None

    def targets(self):
        op, n, d = self.args.op, self.n, self.dir
        if op == "create":
            return ["%s/c%d" % (d, i) for i in range(n)]
        if op == "delete":
            return ["%s/d%d" % (d, i) for i in range(n)]
        if op == "getChildren":
            return [d + "/kids"] * n
        pool = min(max(n, 1), POOL)
        return ["%s/p%d" % (d, i % pool) for i in range(n)]

    def setup(self, deadline):
        try:
            self._setup(deadline)
        except Exception as e:  # noqa: BLE001
            self.setup_exc = e

    def _setup(self, deadline):
        c = self.client
        c.start(timeout=15)
        c.create(self.dir)
        op, n = self.args.op, self.n
        if op == "delete":
            paths = ["%s/d%d" % (self.dir, i) for i in range(n)]
        elif op == "getChildren":
            c.create(self.dir + "/kids")
            paths = ["%s/kids/k%d" % (self.dir, i) for i in range(CHILDREN)]
        elif op in ("setData", "getData", "exists"):
            paths = ["%s/p%d" % (self.dir, i) for i in range(min(max(n, 1), POOL))]
        else:
            paths = []
        _, errs = pipeline(c, paths, lambda p: c.create_async(p, self.value), 256, deadline)
        if errs:
            raise RuntimeError("setup: %d creates failed" % errs)

    def call_async(self, path):
        c, op, v = self.client, self.args.op, self.value
        if op == "create":
            return c.create_async(path, v)
        if op == "setData":
            return c.set_async(path, v)
        if op == "getData":
            return c.get_async(path)
        if op == "exists":
            return c.exists_async(path)
        if op == "getChildren":
            return c.get_children_async(path)
        return c.delete_async(path)

    def call_sync(self, path):
        c, op, v = self.client, self.args.op, self.value
        if op == "create":
            return c.create(path, v)
        if op == "setData":
            return c.set(path, v)
        if op == "getData":
            return c.get(path)
        if op == "exists":
            if c.exists(path) is None:
                raise NoNodeError(path)
            return None
        if op == "getChildren":
            return c.get_children(path)
        return c.delete(path)

    def run(self, start_barrier, deadline):
        try:
            paths = self.targets()
            start_barrier.wait(timeout=60)
            if self.args.mode == "async":
                self.lat, self.errors = pipeline(self.client, paths, self.call_async,
                                                 self.args.window, deadline)
            else:
                pc = time.perf_counter
                for i, p in enumerate(paths):
                    t0 = pc()
                    try:
                        self.call_sync(p)
                    except Exception:  # noqa: BLE001
                        self.errors += 1
                    self.lat.append(pc() - t0)
                    if (i & 255) == 0 and time.monotonic() > deadline:
                        raise TimeoutError("sync loop exceeded the time limit")
        except Exception as e:  # noqa: BLE001
            self.exc = e

    def cleanup(self, deadline):
        c = self.client
        try:
            if not c.connected:
                return
            stack, order = [self.dir], []
            while stack and time.monotonic() < deadline:
                p = stack.pop()
                order.append(p)
                try:
                    stack.extend(p + "/" + k for k in c.get_children(p))
                except NoNodeError:
                    pass
            # delete deepest first, pipelined level by level
            by_depth = {}
            for p in order:
                by_depth.setdefault(p.count("/"), []).append(p)
            for depth in sorted(by_depth, reverse=True):
                pipeline(c, by_depth[depth], c.delete_async, 256, deadline)
        finally:
            c.stop()
            c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hostport")
    ap.add_argument("--op", required=True, choices=OPS)
    ap.add_argument("--ops", type=int, required=True)
    ap.add_argument("--mode", choices=("sync", "async"), default="sync")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--window", type=int, default=64, help="max outstanding requests per client (async)")
    ap.add_argument("--value-size", type=int, default=128)
    ap.add_argument("--timeout", type=float, default=300.0, help="overall time limit, seconds")
    args = ap.parse_args()
    if not (1 <= args.ops <= 10_000_000) or not (1 <= args.clients <= 256) or args.window < 1:
        ap.error("--ops must be 1..10000000, --clients 1..256, --window >= 1")
    args.clients = min(args.clients, args.ops)

    deadline = time.monotonic() + args.timeout
    root = "/zkload-%s" % uuid.uuid4().hex[:12]
    value = b"v" * args.value_size
    admin = KazooClient(hosts=args.hostport, timeout=15.0,
                        connection_retry={"max_tries": 3, "delay": 0.2})
    try:
        admin.start(timeout=15)
    except Exception:
        admin.close()
        raise
    workers = []
    rc = 0
    try:
        admin.create(root)
        workers = [Worker(args, i, root, value) for i in range(args.clients)]
        setup_threads = [threading.Thread(target=w.setup, args=(deadline,)) for w in workers]
        for t in setup_threads:
            t.start()
        for t in setup_threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for w in workers:
            if w.setup_exc is not None:
                print("zk_load: setup of client %d failed: %r" % (w.idx, w.setup_exc), file=sys.stderr)
                return 1

        barrier = threading.Barrier(len(workers) + 1)
        threads = [threading.Thread(target=w.run, args=(barrier, deadline)) for w in workers]
        for t in threads:
            t.start()
        barrier.wait(timeout=60)
        t0 = time.perf_counter()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        elapsed = time.perf_counter() - t0
        if any(t.is_alive() for t in threads):
            print("zk_load: run exceeded --timeout %.0fs" % args.timeout, file=sys.stderr)
            return 1
        for w in workers:
            if w.exc is not None:
                print("zk_load: client %d failed: %r" % (w.idx, w.exc), file=sys.stderr)
                rc = 1
        lat = sorted(x for w in workers for x in w.lat)
        errors = sum(w.errors for w in workers)
        done = len(lat)
        print("op=%s mode=%s ops=%d seconds=%.3f ops_per_sec=%.1f p50_ms=%.3f p99_ms=%.3f clients=%d errors=%d"
              % (args.op, args.mode, done, elapsed, done / elapsed if elapsed > 0 else 0.0,
                 percentile(lat, 0.50) * 1000, percentile(lat, 0.99) * 1000, args.clients, errors),
              flush=True)
        if errors or done != args.ops:
            rc = 1
    finally:
        cleanup_deadline = time.monotonic() + max(30.0, args.timeout / 2)
        for w in workers:
            try:
                w.cleanup(cleanup_deadline)
            except Exception as e:  # noqa: BLE001
                print("zk_load: cleanup of %s failed: %r" % (w.dir, e), file=sys.stderr)
        try:
            admin.delete(root, recursive=True)
        except NoNodeError:
            pass
        except Exception as e:  # noqa: BLE001
            print("zk_load: cleanup of %s failed: %r" % (root, e), file=sys.stderr)
        admin.stop()
        admin.close()
    return rc


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - connection failures, setup errors
        print("zk_load: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
