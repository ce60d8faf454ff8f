#!/usr/bin/env python3
"""End-to-end ZooKeeper protocol checks driven by kazoo.

    python3 kazoo_e2e.py HOST:PORT

Prints one line per check and a final ``kazoo e2e: N checks passed`` (exit 0),
or the first failing check with expected vs got (exit 1).

Validated against Apache ZooKeeper 3.8.0 (standalone, tickTime=2000,
extendedTypesEnabled=true, see scripts/zookeeper-standalone).

kazoo 2.11 has no API for container/TTL creates, addWatch, removeWatches,
checkWatches, setWatches, getAllChildrenNumber or getEphemerals; those
requests are sent here as small hand-written jute records through kazoo's
own request pipeline (client._call) so they still go over the same session.
Watch notifications are tapped at the connection layer so events kazoo does
not route (persistent-watch events) can be checked too.

Environment:
  E2E_REAP_WAIT  seconds to wait for the server to reap an empty container /
                 expired TTL node (default 10; 0 skips those two checks).
                 Real ZooKeeper only reaps every znode.container.checkIntervalMs
                 (60 s by default; scripts/zookeeper-standalone sets 1 s).
  E2E_VERBOSE    1 to print kazoo's logging.
"""

import logging
import os
import socket
import sys
import threading
import time
import traceback
import uuid

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    LockTimeout,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NoWatcherError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.serialization import (
    Connect,
    Create,
    ReplyHeader,
    Watch,
    int_struct,
    long_struct,
    read_string,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import EventType, ZnodeStat
from kazoo.security import ACL, Id, Permissions, make_acl, make_digest_acl, OPEN_ACL_UNSAFE

try:
    from kazoo.protocol.connection import _CONNECTION_DROP
except ImportError:  # pragma: no cover - older/newer kazoo
    _CONNECTION_DROP = None

# Wire event type numbers (WatchedEvent.type in the jute WatcherEvent).
EV_CREATED, EV_DELETED, EV_CHANGED, EV_CHILD = 1, 2, 3, 4

WAIT = 5.0  # default timeout for any single wait, seconds


# --------------------------------------------------------------------------
# Check bookkeeping
# --------------------------------------------------------------------------

class CheckFailed(Exception):
    pass


PASSED = 0


def ok(name):
    global PASSED
    PASSED += 1
    print("ok   %s" % name, flush=True)


def note(msg):
    print("note %s" % msg, flush=True)


def expect_eq(name, got, expected):
    if got != expected:
        raise CheckFailed("%s: expected %r, got %r" % (name, expected, got))
    ok(name)


def expect_true(name, cond, detail=""):
    if not cond:
        raise CheckFailed("%s: condition false %s" % (name, detail))
    ok(name)


def expect_raises(name, exc_type, fn, *args, **kwargs):
    try:
        res = fn(*args, **kwargs)
    except exc_type:
        ok(name)
        return
    except Exception as e:  # noqa: BLE001
        raise CheckFailed("%s: expected %s, got %s: %s" % (name, exc_type.__name__, type(e).__name__, e))
    raise CheckFailed("%s: expected %s, got result %r" % (name, exc_type.__name__, res))


def wait_until(pred, timeout=WAIT, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(step)


# --------------------------------------------------------------------------
# Requests kazoo 2.11 does not expose (hand-written jute records)
# --------------------------------------------------------------------------

def _acl_bytes(acl):
    b = bytearray(int_struct.pack(len(acl)))
    for a in acl:
        b += int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id)
    return b


def _create2_response(buf, offset):
    path, offset = read_string(buf, offset)
    return path, ZnodeStat._make(stat_struct.unpack_from(buf, offset))


class CreateContainer(object):  # OpCode.createContainer, CreateRequest body
    type = 19

    def __init__(self, path, data, acl):
        self.path, self.data, self.acl = path, data, acl

    def serialize(self):
        return (bytearray(write_string(self.path)) + write_buffer(self.data)
                + _acl_bytes(self.acl) + int_struct.pack(4))  # CreateMode.CONTAINER

    @classmethod
    def deserialize(cls, buf, offset):
        return _create2_response(buf, offset)


class CreateTTL(object):  # OpCode.createTTL, CreateTTLRequest
    type = 21

    def __init__(self, path, data, acl, flags, ttl):
        self.path, self.data, self.acl, self.flags, self.ttl = path, data, acl, flags, ttl

    def serialize(self):
        return (bytearray(write_string(self.path)) + write_buffer(self.data)
                + _acl_bytes(self.acl) + int_struct.pack(self.flags) + long_struct.pack(self.ttl))

    @classmethod
    def deserialize(cls, buf, offset):
        return _create2_response(buf, offset)


class RawCreate2(object):  # create2 with an explicit (possibly empty) ACL list
    type = 15

    def __init__(self, path, data, acl, flags):
        self.path, self.data, self.acl, self.flags = path, data, acl, flags

    def serialize(self):
        return (bytearray(write_string(self.path)) + write_buffer(self.data)
                + _acl_bytes(self.acl) + int_struct.pack(self.flags))

    @classmethod
    def deserialize(cls, buf, offset):
        return _create2_response(buf, offset)


class PathOnly(object):
    def __init__(self, path):
        self.path = path

    def serialize(self):
        return bytearray(write_string(self.path))


class GetAllChildrenNumber(PathOnly):
    type = 104

    @classmethod
    def deserialize(cls, buf, offset):
        return int_struct.unpack_from(buf, offset)[0]


class GetEphemerals(PathOnly):
    type = 103

    @classmethod
    def deserialize(cls, buf, offset):
        n = int_struct.unpack_from(buf, offset)[0]
        offset += 4
        out = []
        for _ in range(max(n, 0)):
            s, offset = read_string(buf, offset)
            out.append(s)
        return out


class PathAndInt(object):
    def __init__(self, path, value):
        self.path, self.value = path, value

    def serialize(self):
        return bytearray(write_string(self.path)) + int_struct.pack(self.value)

    @classmethod
    def deserialize(cls, buf, offset):
        return len(buf) - offset  # body length; these replies carry no fields we need


class AddWatch(PathAndInt):  # mode: 0 PERSISTENT, 1 PERSISTENT_RECURSIVE
    type = 106


class RemoveWatches(PathAndInt):  # WatcherType: 1 children, 2 data, 3 any
    type = 18


class CheckWatches(PathAndInt):
    type = 17


class SetWatches(object):  # OpCode.setWatches (101)
    type = 101

    def __init__(self, rel_zxid, data, exist, child):
        self.rel_zxid, self.data, self.exist, self.child = rel_zxid, data, exist, child

    def serialize(self):
        b = bytearray(long_struct.pack(self.rel_zxid))
        for lst in (self.data, self.exist, self.child):
            b += int_struct.pack(len(lst))
            for p in lst:
                b += write_string(p)
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return len(buf) - offset


def call(client, request, timeout=WAIT):
    ar = client.handler.async_result()
    client._call(request, ar)
    return ar.get(timeout=timeout)


# --------------------------------------------------------------------------
# Watch-event tap: records every WatcherEvent frame the client receives
# --------------------------------------------------------------------------

class EventTap(object):
    def __init__(self, client):
        self.lock = threading.Lock()
        self.events = []  # (type, state, path)
        conn = client._connection
        orig = conn._read_watch_event

        def tapped(buffer, offset):
            w, _ = Watch.deserialize(buffer, offset)
            with self.lock:
                self.events.append((w.type, w.state, w.path))
            return orig(buffer, offset)

        conn._read_watch_event = tapped

    def mark(self):
        with self.lock:
            return len(self.events)

    def since(self, mark, prefix=None):
        with self.lock:
            evs = self.events[mark:]
        if prefix is not None:
            evs = [e for e in evs if e[2] == prefix or e[2].startswith(prefix + "/")]
        return [(t, p) for (t, _s, p) in evs]

    def wait_count(self, mark, n, prefix=None, timeout=WAIT):
        wait_until(lambda: len(self.since(mark, prefix)) >= n, timeout)
        return self.since(mark, prefix)


# --------------------------------------------------------------------------
# Raw session (plain socket), for expiry / resume-after-expiry checks
# --------------------------------------------------------------------------

class RawSession(object):
    def __init__(self, host, port, timeout_ms, session_id=0, passwd=b"\x00" * 16, last_zxid=0):
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.sock.settimeout(WAIT)
        self._send(Connect(0, last_zxid, timeout_ms, session_id, passwd, False).serialize())
        body = self._recv_frame()
        resp, _ = Connect.deserialize(body, 0)
        self.timeout = resp.time_out
        self.session_id = resp.session_id
        self.passwd = resp.passwd
        self.xid = 0

    def _send(self, payload):
        self.sock.sendall(int_struct.pack(len(payload)) + bytes(payload))

    def _recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("server closed the connection")
            out += chunk
        return out

    def _recv_frame(self):
        (n,) = int_struct.unpack(self._recv_exact(4))
        return self._recv_exact(n)

    def request(self, req):
        self.xid += 1
        self._send(int_struct.pack(self.xid) + int_struct.pack(req.type) + req.serialize())
        for _ in range(100):
            body = self._recv_frame()
            hdr, off = ReplyHeader.deserialize(body, 0)
            if hdr.xid == self.xid:
                return hdr, body, off
        raise RuntimeError("no reply for xid %d" % self.xid)

    def closed_by_server(self, timeout=3.0):
        """True if the server closes the TCP connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True

    def drop(self):
        """Close the TCP connection without sending closeSession."""
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------

class E2E(object):
    def __init__(self, hostport):
        self.hostport = hostport
        host, _, port = hostport.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.root = "/e2e-%s" % uuid.uuid4().hex[:12]
        self.clients = []

    def client(self, timeout=10.0, **kw):
        c = KazooClient(hosts=self.hostport, timeout=timeout, **kw)
        c.start(timeout=WAIT * 2)
        self.clients.append(c)
        return c

    def p(self, *parts):
        return "/".join((self.root,) + parts)

    def run(self):
        c1 = self.client()
        self.c1 = c1
        self.tap1 = EventTap(c1)
        c2 = self.client()
        self.c2 = c2
        self.sections = [
            self.creates, self.errors, self.stats_and_children, self.transactions,
            self.acls, self.one_shot_watches, self.persistent_watches,
            self.set_watches_and_reconnect, self.ephemeral_lifetime,
            self.counts, self.reaping, self.recipes,
        ]
        for section in self.sections:
            section()

    def cleanup(self):
        try:
            c = KazooClient(hosts=self.hostport, timeout=10.0)
            c.start(timeout=WAIT * 2)
            self.clients.append(c)
            c.add_auth("digest", "user:pass")  # the digest identity the ACL checks use
            self._delete_tree(c, self.root, time.monotonic() + 20)
        except NoNodeError:
            pass
        except Exception as e:  # noqa: BLE001
            print("cleanup: could not delete %s: %r" % (self.root, e))
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:  # noqa: BLE001
                pass

    def _delete_tree(self, c, path, deadline):
        if time.monotonic() > deadline:
            raise RuntimeError("cleanup time limit")
        try:
            kids = c.get_children(path)
        except NoAuthError:
            c.set_acls(path, OPEN_ACL_UNSAFE)
            kids = c.get_children(path)
        except NoNodeError:
            return
        for k in kids:
            self._delete_tree(c, path + "/" + k, deadline)
        try:
            c.delete(path)
        except NoNodeError:
            pass

    # ---- create variants -------------------------------------------------

    def creates(self):
        c1 = self.c1
        expect_eq("create persistent root returns path", c1.create(self.root, b"root"), self.root)
        path, st = c1.create(self.p("p"), b"hello", include_data=True)
        expect_eq("create2 returns path", path, self.p("p"))
        expect_true("create2 stat: version 0, dataLength 5, czxid==mzxid==pzxid, owner 0",
                    st.version == 0 and st.dataLength == 5 and st.czxid == st.mzxid == st.pzxid
                    and st.ephemeralOwner == 0 and st.cversion == 0 and st.numChildren == 0
                    and st.ctime == st.mtime and st.ctime > 0, repr(st))
        data, gst = c1.get(self.p("p"))
        expect_eq("get returns data", data, b"hello")
        expect_eq("get stat equals create2 stat", gst, st)
        expect_eq("create empty data -> dataLength 0",
                  c1.create(self.p("empty"), b"", include_data=True)[1].dataLength, 0)

        seq = c1.create(self.p("seq"))
        s0 = c1.create(self.p("seq", "n-"), sequence=True)
        expect_eq("sequential name -0000000000", s0, self.p("seq", "n-0000000000"))
        s1 = c1.create(self.p("seq", "n-"), sequence=True)
        expect_eq("sequential name -0000000001", s1, self.p("seq", "n-0000000001"))
        c1.create(self.p("seq", "plain"))
        c1.delete(self.p("seq", "plain"))
        s3 = c1.create(self.p("seq", "n-"), sequence=True)
        # ZooKeeper quirk: the suffix counts every child *create* under the parent
        # (sequential or not) but not deletes, whereas stat.cversion counts both.
        expect_eq("sequence suffix counts plain creates, not deletes", s3, self.p("seq", "n-0000000003"))
        expect_eq("stat.cversion counts creates and deletes", c1.exists(self.p("seq")).cversion, 5)
        s4 = c1.create(self.p("seq", ""), sequence=True)
        expect_eq("sequential with empty prefix", s4, self.p("seq", "0000000004"))
        del seq

        sid = c1.client_id[0]
        e = c1.create(self.p("eph"), b"e", ephemeral=True)
        expect_eq("ephemeral ephemeralOwner == session id", c1.exists(e).ephemeralOwner, sid)
        es = c1.create(self.p("eseq-"), ephemeral=True, sequence=True)
        expect_true("ephemeral+sequential naming",
                    es.startswith(self.p("eseq-")) and len(es) == len(self.p("eseq-")) + 10
                    and es[-10:].isdigit(), es)
        expect_eq("ephemeral+sequential owner", c1.exists(es).ephemeralOwner, sid)

        path, st = call(c1, CreateContainer(self.p("ctr"), b"c", OPEN_ACL_UNSAFE))
        expect_eq("container create returns path", path, self.p("ctr"))
        # Internally containers/TTL nodes use special ephemeralOwner values, but the
        # Stat sent to clients reports 0 for them.
        expect_eq("container stat ephemeralOwner reported as 0", st.ephemeralOwner, 0)
        expect_eq("container exists() ephemeralOwner 0", c1.exists(self.p("ctr")).ephemeralOwner, 0)

        note("kazoo %s has no ttl= on create; TTL nodes use a raw createTTL (opcode 21) request"
             % _kazoo_version())
        path, st = call(c1, CreateTTL(self.p("ttl"), b"t", OPEN_ACL_UNSAFE, 5, 60000))
        expect_eq("TTL create returns path", path, self.p("ttl"))
        expect_eq("TTL stat ephemeralOwner reported as 0", st.ephemeralOwner, 0)
        expect_eq("TTL node data", c1.get(self.p("ttl"))[0], b"t")
        path, st = call(c1, CreateTTL(self.p("ttlseq-"), b"", OPEN_ACL_UNSAFE, 6, 60000))
        expect_true("TTL sequential naming", path.startswith(self.p("ttlseq-")) and path[-10:].isdigit(), path)
        expect_raises("TTL with ttl=0 -> BadArguments", BadArgumentsError,
                      call, c1, CreateTTL(self.p("ttl0"), b"", OPEN_ACL_UNSAFE, 5, 0))
        expect_raises("TTL above 2^40-1 ms -> BadArguments", BadArgumentsError,
                      call, c1, CreateTTL(self.p("ttlbig"), b"", OPEN_ACL_UNSAFE, 5, 1 << 41))
        expect_raises("createTTL with non-TTL mode -> BadArguments", BadArgumentsError,
                      call, c1, CreateTTL(self.p("ttlbad"), b"", OPEN_ACL_UNSAFE, 0, 1000))

        c1.create(self.p("mk", "a", "b"), b"leaf", makepath=True)
        expect_true("makepath created intermediates",
                    c1.exists(self.p("mk")) is not None and c1.exists(self.p("mk", "a")) is not None
                    and c1.get(self.p("mk", "a", "b"))[0] == b"leaf")
        expect_eq("makepath intermediates have empty data", c1.get(self.p("mk", "a"))[0], b"")

    # ---- error codes ------------------------------------------------------

    def errors(self):
        c1 = self.c1
        expect_raises("create existing -> NodeExists", NodeExistsError, c1.create, self.p("p"))
        expect_raises("create under missing parent -> NoNode", NoNodeError, c1.create, self.p("nope", "x"))
        expect_raises("get missing -> NoNode", NoNodeError, c1.get, self.p("nope"))
        expect_raises("set missing -> NoNode", NoNodeError, c1.set, self.p("nope"), b"x")
        expect_raises("delete missing -> NoNode", NoNodeError, c1.delete, self.p("nope"))
        expect_raises("get_children missing -> NoNode", NoNodeError, c1.get_children, self.p("nope"))
        expect_raises("set wrong version -> BadVersion", BadVersionError, c1.set, self.p("p"), b"x", version=7)
        expect_raises("delete wrong version -> BadVersion", BadVersionError, c1.delete, self.p("p"), version=7)
        expect_eq("failed set left data alone", c1.get(self.p("p"))[0], b"hello")
        expect_raises("delete non-empty -> NotEmpty", NotEmptyError, c1.delete, self.p("seq"))
        expect_raises("child of ephemeral -> NoChildrenForEphemerals", NoChildrenForEphemeralsError,
                      c1.create, self.p("eph", "kid"))
        expect_raises("create with trailing slash -> BadArguments", BadArgumentsError,
                      call, c1, RawCreate2(self.p("p") + "/", b"", OPEN_ACL_UNSAFE, 0))
        expect_raises("create path ending in /. -> BadArguments", BadArgumentsError,
                      call, c1, RawCreate2(self.p("p") + "/.", b"", OPEN_ACL_UNSAFE, 0))
        expect_raises("delete / -> BadArguments", BadArgumentsError, c1.delete, "/")

    # ---- stat bookkeeping / children / exists / sync / zxid ---------------

    def stats_and_children(self):
        c1 = self.c1
        d = self.p("d")
        _, st0 = c1.create(d, b"v0", include_data=True)
        z_before = c1.last_zxid
        st1 = c1.set(d, b"v1-longer")
        expect_true("set: version 1, mzxid > czxid, dataLength, ctime kept, mtime >= ctime",
                    st1.version == 1 and st1.mzxid > st1.czxid == st0.czxid and st1.dataLength == 9
                    and st1.ctime == st0.ctime and st1.mtime >= st0.mtime, repr(st1))
        expect_true("server zxid increases on write", c1.last_zxid > z_before,
                    "%d -> %d" % (z_before, c1.last_zxid))
        st2 = c1.set(d, b"v2", version=1)
        expect_true("set with matching version", st2.version == 2 and st2.mzxid > st1.mzxid, repr(st2))
        expect_eq("pzxid unchanged by set", st2.pzxid, st0.pzxid)

        kids = ["b", "a", "c"]
        last = None
        for k in kids:
            last = c1.create(self.p("d", k), k.encode(), include_data=True)[1]
        st3 = c1.exists(d)
        expect_true("children: numChildren 3, cversion 3, pzxid = last child czxid, version kept",
                    st3.numChildren == 3 and st3.cversion == 3 and st3.pzxid == last.czxid
                    and st3.version == 2 and st3.mzxid == st2.mzxid, repr(st3))
        c1.delete(self.p("d", "c"))
        st4 = c1.exists(d)
        expect_true("delete child: numChildren 2, cversion 4, pzxid advanced",
                    st4.numChildren == 2 and st4.cversion == 4 and st4.pzxid > st3.pzxid, repr(st4))
        expect_eq("get_children (sorted)", sorted(c1.get_children(d)), ["a", "b"])
        ch, cst = c1.get_children(d, include_data=True)
        expect_true("get_children include_data stat", sorted(ch) == ["a", "b"] and cst == st4,
                    "%r %r" % (ch, cst))
        expect_eq("get_children of leaf is empty", c1.get_children(self.p("d", "a")), [])
        expect_eq("exists missing -> None", c1.exists(self.p("d", "zz")), None)
        expect_eq("exists returns stat", c1.exists(d), st4)
        expect_eq("sync returns path", c1.sync(d), d)
        root_kids = c1.get_children("/")
        expect_true("root listing contains test root", self.root[1:] in root_kids, repr(root_kids))
        expect_true("/zookeeper exists", c1.exists("/zookeeper") is not None)
        big = b"x" * 200000
        c1.set(self.p("d", "a"), big)
        expect_eq("200 KB value round-trips", c1.get(self.p("d", "a"))[0], big)

    # ---- multi -----------------------------------------------------------

    def transactions(self):
        c1 = self.c1
        t = self.p("t")
        c1.create(t, b"t0")
        c1.create(self.p("t", "gone"))
        tx = c1.transaction()
        tx.check(t, 0)
        tx.create(self.p("t", "new"), b"n")
        tx.set_data(t, b"t1")
        tx.delete(self.p("t", "gone"))
        res = tx.commit()
        expect_true("multi success results [True, path, stat, True]",
                    len(res) == 4 and res[0] is True and res[1] == self.p("t", "new")
                    and isinstance(res[2], ZnodeStat) and res[2].version == 1 and res[3] is True, repr(res))
        expect_true("multi success applied",
                    c1.get(t)[0] == b"t1" and c1.exists(self.p("t", "new")) is not None
                    and c1.exists(self.p("t", "gone")) is None)
        st_before = c1.exists(t)
        z_before = c1.last_zxid

        tx = c1.transaction()
        tx.create(self.p("t", "never"), b"x")
        tx.set_data(t, b"t2", version=99)
        tx.delete(self.p("t", "new"))
        res = tx.commit()
        expect_eq("failed multi per-op errors [RolledBack, BadVersion, RuntimeInconsistency]",
                  [type(r) for r in res], [RolledBackError, BadVersionError, RuntimeInconsistency])
        expect_true("failed multi changed nothing",
                    c1.exists(self.p("t", "never")) is None and c1.exists(self.p("t", "new")) is not None
                    and c1.exists(t) == st_before and c1.get(t)[0] == b"t1")
        note("failed multi: zxid %d -> %d (ZooKeeper still consumes a zxid for a failed multi)"
             % (z_before, c1.last_zxid))

        tx = c1.transaction()
        tx.check(t, 0)
        tx.create(self.p("t", "never2"))
        res = tx.commit()
        expect_eq("multi failing check first -> [BadVersion, RuntimeInconsistency]",
                  [type(r) for r in res], [BadVersionError, RuntimeInconsistency])
        tx = c1.transaction()
        tx.create(self.p("t", "dup"))
        tx.create(self.p("t", "dup"))
        res = tx.commit()
        expect_eq("multi create twice -> [RolledBack, NodeExists]",
                  [type(r) for r in res], [RolledBackError, NodeExistsError])
        expect_eq("multi create twice left nothing", c1.exists(self.p("t", "dup")), None)
        tx = c1.transaction()
        tx.create(self.p("t", "par"))
        tx.create(self.p("t", "par", "kid"), b"k")
        res = tx.commit()
        expect_eq("multi sees its own earlier ops", res, [self.p("t", "par"), self.p("t", "par", "kid")])
        tx = c1.transaction()
        tx.create(self.p("t", "shut"), acl=[make_digest_acl("nobody", "x", all=True)])
        tx.create(self.p("t", "shut", "kid"))
        res = tx.commit()
        expect_eq("multi checks ACLs its earlier ops set -> [RolledBack, NoAuth]",
                  [type(r) for r in res], [RolledBackError, NoAuthError])
        expect_eq("multi refused by an ACL left nothing", c1.exists(self.p("t", "shut")), None)
        tx = c1.transaction()
        tx.create(self.p("t", "sq-"), sequence=True)
        res = tx.commit()
        expect_true("multi sequential create returns real name",
                    res[0].startswith(self.p("t", "sq-")) and res[0][-10:].isdigit(), repr(res))

    # ---- ACLs ------------------------------------------------------------

    def acls(self):
        c1, c2 = self.c1, self.c2
        a = self.p("acl")
        c1.create(a, b"secret")
        acls, st = c1.get_acls(a)
        expect_eq("default ACL world:anyone ALL", [(x.perms, x.id.scheme, x.id.id) for x in acls],
                  [(Permissions.ALL, "world", "anyone")])
        expect_eq("fresh node aversion 0", st.aversion, 0)
        dacl = make_digest_acl("user", "pass", all=True)
        st = c1.set_acls(a, [dacl])
        expect_eq("set_acls bumps aversion", st.aversion, 1)
        expect_raises("no auth: get -> NoAuth", NoAuthError, c1.get, a)
        expect_raises("no auth: set -> NoAuth", NoAuthError, c1.set, a, b"x")
        expect_raises("no auth: get_acls -> NoAuth (needs READ or ADMIN)", NoAuthError, c1.get_acls, a)
        expect_raises("no auth: set_acls -> NoAuth (ADMIN checked before version)", NoAuthError,
                      c1.set_acls, a, OPEN_ACL_UNSAFE, version=5)
        expect_true("no auth: exists still works (no ACL check)", c1.exists(a) is not None)
        c3 = self.client()
        c3.add_auth("digest", "user:wrong")
        expect_raises("wrong password: get -> NoAuth", NoAuthError, c3.get, a)
        c2.add_auth("digest", "user:pass")
        expect_eq("after add_auth: get works", c2.get(a)[0], b"secret")
        acls, _ = c2.get_acls(a)
        expect_eq("get_acls returns digest ACL", [(x.perms, x.id.scheme, x.id.id) for x in acls],
                  [(Permissions.ALL, "digest", dacl.id.id)])
        expect_raises("set_acls wrong aversion -> BadVersion", BadVersionError,
                      c2.set_acls, a, [dacl], version=5)
        c2.set(a, b"secret2")
        expect_eq("after add_auth: set works", c1.exists(a).version, 1)

        # 'auth' scheme expands to the creator's authenticated ids
        ca = self.p("acl-auth")
        c2.create(ca, b"x", acl=[make_acl("auth", "", all=True)])
        acls, _ = c2.get_acls(ca)
        expect_eq("auth scheme ACL stored as digest id", [(x.id.scheme, x.id.id) for x in acls],
                  [("digest", dacl.id.id)])

        # read-only for world, all for digest user
        ro = self.p("acl-ro")
        c1.create(ro, b"r", acl=[make_acl("world", "anyone", read=True), dacl])
        expect_eq("world read-only: read ok", c1.get(ro)[0], b"r")
        expect_raises("world read-only: set -> NoAuth", NoAuthError, c1.set, ro, b"w")
        expect_raises("world read-only: create child -> NoAuth", NoAuthError, c1.create, ro + "/k")
        expect_eq("digest user may write", c2.set(ro, b"w").version, 1)
        # delete checks the parent's DELETE permission, not the node's
        c2.create(ro + "/k")
        expect_raises("delete needs DELETE on parent -> NoAuth", NoAuthError, c1.delete, ro + "/k")
        c2.delete(ro + "/k")

        expect_raises("malformed digest id -> InvalidACL", InvalidACLError,
                      c1.set_acls, self.p("p"), [ACL(Permissions.ALL, Id("digest", "nocolon"))])
        expect_raises("unknown scheme -> InvalidACL", InvalidACLError,
                      c1.set_acls, self.p("p"), [ACL(Permissions.ALL, Id("bogus", "x"))])
        expect_raises("empty ACL list on set -> InvalidACL", InvalidACLError, c1.set_acls, self.p("p"), [])
        expect_raises("empty ACL list on create -> InvalidACL", InvalidACLError,
                      call, c1, RawCreate2(self.p("noacl"), b"", [], 0))
        expect_raises("auth scheme without credentials -> InvalidACL", InvalidACLError,
                      c1.create, self.p("authless"), acl=[make_acl("auth", "", all=True)])
        expect_eq("failed create left nothing", c1.exists(self.p("noacl")), None)

        ip = self.p("acl-ip")
        c1.create(ip, b"ip", acl=[make_acl("ip", "127.0.0.1", all=True)])
        expect_eq("ip:127.0.0.1 ACL admits loopback client", c2.get(ip)[0], b"ip")
        ipn = self.p("acl-ip-other")
        c1.create(ipn, b"ip", acl=[make_acl("ip", "10.1.2.3", all=True), dacl])
        expect_raises("ip:10.1.2.3 ACL rejects loopback client", NoAuthError, c1.get, ipn)
        ipc = self.p("acl-ip-cidr")
        c1.create(ipc, b"ip", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
        expect_eq("ip:127.0.0.0/8 ACL admits loopback", c1.get(ipc)[0], b"ip")
        expect_raises("set_acls needs ADMIN -> NoAuth", NoAuthError, c1.set_acls, ipn, OPEN_ACL_UNSAFE)
        # open up restrictive ACLs again so the recursive cleanup delete can list children
        for n in (a, ca, ro, ipn):
            c2.set_acls(n, OPEN_ACL_UNSAFE)
        expect_eq("digest-authed admin reopened ACLs", c1.get(ipn)[0], b"ip")

    # ---- one-shot watches ---------------------------------------------------

    def one_shot_watches(self):
        c1, c2 = self.c1, self.c2
        w = self.p("w")
        c1.create(w, b"0")
        got = []
        fired = threading.Event()

        def data_watch(ev):
            got.append(ev)
            fired.set()

        c1.get(w, watch=data_watch)
        c2.set(w, b"1")
        expect_true("data watch fires", fired.wait(WAIT))
        expect_true("data watch event NodeDataChanged", got[0].type == EventType.CHANGED and got[0].path == w,
                    repr(got))
        fired.clear()
        c2.set(w, b"2")
        time.sleep(0.5)
        expect_eq("data watch is one-shot", len(got), 1)

        got2, fired2 = [], threading.Event()
        c1.exists(self.p("w2"), watch=lambda ev: (got2.append(ev), fired2.set()))
        c2.create(self.p("w2"))
        expect_true("exists watch fires CREATED", fired2.wait(WAIT) and got2[0].type == EventType.CREATED,
                    repr(got2))

        got3, fired3 = [], threading.Event()
        c1.get_children(w, watch=lambda ev: (got3.append(ev), fired3.set()))
        c2.set(w, b"3")  # data change must NOT fire a child watch
        time.sleep(0.3)
        expect_eq("child watch ignores data change", got3, [])
        c2.create(self.p("w", "kid"))
        expect_true("children watch fires CHILD", fired3.wait(WAIT) and got3[0].type == EventType.CHILD
                    and got3[0].path == w, repr(got3))

        got4, fired4 = [], threading.Event()
        c1.get(self.p("w", "kid"), watch=lambda ev: (got4.append(ev), fired4.set()))
        c2.delete(self.p("w", "kid"))
        expect_true("data watch fires DELETED on delete", fired4.wait(WAIT) and got4[0].type == EventType.DELETED,
                    repr(got4))

        # one event per watch registration kind: exists+get on same path -> single delivery per kazoo watcher
        m = self.tap1.mark()
        c1.create(self.p("w3"))
        c1.exists(self.p("w3"), watch=lambda ev: None)
        c1.get(self.p("w3"), watch=lambda ev: None)
        c1.get_children(self.p("w3"), watch=lambda ev: None)
        c2.delete(self.p("w3"))
        self.tap1.wait_count(m, 1, prefix=self.p("w3"))
        time.sleep(0.3)
        evs = self.tap1.since(m, prefix=self.p("w3"))
        expect_eq("delete with data+child watches: one NodeDeleted frame", evs, [(EV_DELETED, self.p("w3"))])

        m = self.tap1.mark()
        c1.exists(self.p("w4"), watch=lambda ev: None)
        tx = c2.transaction()
        tx.create(self.p("w4"))
        tx.set_data(self.p("w4"), b"x")
        tx.commit()
        evs = self.tap1.wait_count(m, 1, prefix=self.p("w4"))
        expect_eq("watch fired by multi delivers NodeCreated once", evs, [(EV_CREATED, self.p("w4"))])

    # ---- persistent watches (addWatch) -------------------------------------

    def persistent_watches(self):
        c1, c2, tap = self.c1, self.c2, self.tap1
        pw = self.p("pw")
        c1.create(pw, b"0")
        note("kazoo %s has no add_watch; using raw addWatch (opcode 106)" % _kazoo_version())
        call(c1, AddWatch(pw, 0))
        m = tap.mark()
        c2.set(pw, b"1")
        c2.set(pw, b"2")
        c2.create(pw + "/k")
        c2.create(pw + "/k/deep")
        c2.delete(pw + "/k/deep")
        c2.delete(pw + "/k")
        evs = tap.wait_count(m, 4, prefix=pw)
        time.sleep(0.3)
        evs = tap.since(m, prefix=pw)
        expect_eq("persistent watch: repeated data + child events, not below children",
                  evs, [(EV_CHANGED, pw), (EV_CHANGED, pw), (EV_CHILD, pw), (EV_CHILD, pw)])

        m = tap.mark()
        call(c1, RemoveWatches(pw, 3))
        time.sleep(0.2)
        c2.set(pw, b"3")
        time.sleep(0.4)
        evs = [e for e in tap.since(m, prefix=pw) if e[0] in (1, 2, 3, 4)]
        expect_eq("removeWatches stops persistent watch", evs, [])
        note("events on removeWatches: %r" % [e for e in tap.since(m, prefix=pw) if e[0] not in (1, 2, 3, 4)])
        expect_raises("removeWatches with no watch -> NoWatcher", NoWatcherError, call, c1, RemoveWatches(pw, 3))
        expect_raises("checkWatches with no watch -> NoWatcher", NoWatcherError, call, c1, CheckWatches(pw, 3))
        c1.get(pw, watch=lambda ev: None)
        expect_eq("checkWatches data watch present -> ok (no error)", call(c1, CheckWatches(pw, 2)) >= 0, True)

        rw = self.p("rw")
        c1.create(rw)
        call(c1, AddWatch(rw, 1))
        m = tap.mark()
        c2.create(rw + "/x")
        c2.create(rw + "/x/y", b"y")
        c2.set(rw + "/x/y", b"yy")
        c2.delete(rw + "/x/y")
        c2.set(rw, b"top")
        evs = tap.wait_count(m, 5, prefix=rw)
        time.sleep(0.3)
        evs = tap.since(m, prefix=rw)
        expect_eq("persistent recursive: created/changed/deleted below, no child events",
                  evs, [(EV_CREATED, rw + "/x"), (EV_CREATED, rw + "/x/y"), (EV_CHANGED, rw + "/x/y"),
                        (EV_DELETED, rw + "/x/y"), (EV_CHANGED, rw)])
        call(c1, RemoveWatches(rw, 3))

        # persistent watch on a path that does not exist yet
        nx = self.p("later")
        call(c1, AddWatch(nx, 0))
        m = tap.mark()
        c2.create(nx)
        c2.delete(nx)
        c2.create(nx)
        evs = tap.wait_count(m, 3, prefix=nx)
        expect_eq("persistent watch survives delete/recreate",
                  evs, [(EV_CREATED, nx), (EV_DELETED, nx), (EV_CREATED, nx)])
        call(c1, RemoveWatches(nx, 3))

    # ---- setWatches + reconnect with session resume -----------------------

    def set_watches_and_reconnect(self):
        c1 = self.c1
        c4 = self.client(timeout=10.0)
        tap4 = EventTap(c4)
        sid, pwd = c4.client_id
        e = c4.create(self.p("c4-eph"), ephemeral=True)
        c1.create(self.p("sw-data"), b"0")
        c1.create(self.p("sw-kids"))
        c1.create(self.p("sw-gone"))
        c1.create(self.p("sw-later"), b"0")

        states = []
        reconnected = threading.Event()
        suspended = threading.Event()

        def listener(state):
            states.append(state)
            if state == KazooState.SUSPENDED:
                suspended.set()
            elif state == KazooState.CONNECTED and suspended.is_set():
                reconnected.set()

        c4.add_listener(listener)
        lost_watch = []
        c4.get(self.p("sw-later"), watch=lambda ev: lost_watch.append(ev))
        if _CONNECTION_DROP is not None:
            c4._call(_CONNECTION_DROP, c4.handler.async_result())
        else:
            c4._connection._socket.shutdown(socket.SHUT_RDWR)
        expect_true("dropped TCP connection -> SUSPENDED -> CONNECTED", reconnected.wait(WAIT * 2), repr(states))
        expect_eq("session id kept across reconnect", c4.client_id[0], sid)
        expect_eq("session password kept", c4.client_id[1], pwd)
        st = c1.exists(e)
        expect_true("ephemeral survives reconnect", st is not None and st.ephemeralOwner == sid, repr(st))
        note("kazoo itself does not re-register watches after reconnect (it fires them with type NONE: %r); "
             "re-registration is done with an explicit setWatches below" % [ev.type for ev in lost_watch])

        z0 = c4.last_zxid
        c1.set(self.p("sw-data"), b"1")
        c1.create(self.p("sw-kids", "k"))
        c1.delete(self.p("sw-gone"))
        c1.create(self.p("sw-new"))
        m = tap4.mark()
        call(c4, SetWatches(z0, [self.p("sw-data"), self.p("sw-gone")], [self.p("sw-new")],
                            [self.p("sw-kids")]))
        evs = tap4.wait_count(m, 4, prefix=self.root)
        expect_eq("setWatches with old relativeZxid fires missed events at once",
                  sorted(evs), sorted([(EV_CHANGED, self.p("sw-data")), (EV_DELETED, self.p("sw-gone")),
                                       (EV_CREATED, self.p("sw-new")), (EV_CHILD, self.p("sw-kids"))]))
        m = tap4.mark()
        call(c4, SetWatches(c4.last_zxid, [self.p("sw-later")], [self.p("sw-none")], []))
        time.sleep(0.3)
        expect_eq("setWatches with current zxid fires nothing", tap4.since(m, prefix=self.root), [])
        c1.set(self.p("sw-later"), b"1")
        c1.create(self.p("sw-none"))
        evs = tap4.wait_count(m, 2, prefix=self.root)
        expect_eq("re-registered watches fire on later change",
                  evs, [(EV_CHANGED, self.p("sw-later")), (EV_CREATED, self.p("sw-none"))])
        c4.remove_listener(listener)
        c4.stop()
        expect_eq("ephemeral removed when its client closes the session", c1.exists(e), None)

    # ---- ephemeral lifetime: close / expiry / resume ------------------------

    def ephemeral_lifetime(self):
        c1 = self.c1
        c5 = self.client()
        e = c5.create(self.p("c5-eph"), ephemeral=True)
        gone = threading.Event()
        c1.exists(e, watch=lambda ev: gone.set() if ev.type == EventType.DELETED else None)
        c5.stop()
        expect_true("closing client deletes its ephemeral (watcher sees DELETED)", gone.wait(WAIT))
        expect_eq("closed client's ephemeral gone", c1.exists(e), None)

        # raw session: requested timeout below the server minimum is clamped up
        raw = RawSession(self.host, self.port, 1000)
        expect_true("connect: session id assigned, timeout negotiated > 0",
                    raw.session_id != 0 and raw.timeout > 0 and len(raw.passwd) == 16, repr(raw.timeout))
        note("requested 1000 ms session timeout, server negotiated %d ms" % raw.timeout)
        hdr, body, off = raw.request(Create(self.p("raw-eph"), b"r", OPEN_ACL_UNSAFE, 1))
        expect_eq("raw ephemeral create ok", (hdr.err, read_string(body, off)[0]), (0, self.p("raw-eph")))
        owner = c1.exists(self.p("raw-eph")).ephemeralOwner
        expect_eq("raw ephemeral owned by raw session", owner, raw.session_id)
        sid, pwd, t0 = raw.session_id, raw.passwd, time.monotonic()
        raw.drop()  # no closeSession: the session must expire on its own
        time.sleep(0.5)
        expect_true("ephemeral outlives a dropped connection (before timeout)",
                    c1.exists(self.p("raw-eph")) is not None)
        deadline = raw.timeout / 1000.0 * 3 + 5
        wait_until(lambda: c1.exists(self.p("raw-eph")) is None, timeout=deadline, step=0.2)
        elapsed = time.monotonic() - t0
        expect_true("ephemeral removed after session expiry", c1.exists(self.p("raw-eph")) is None,
                    "still there after %.1fs" % elapsed)
        note("session expiry removed the ephemeral %.1fs after the connection dropped (timeout %d ms)"
             % (elapsed, raw.timeout))

        again = RawSession(self.host, self.port, 4000, session_id=sid, passwd=pwd)
        expect_eq("resume of expired session -> ConnectResponse timeout 0", again.timeout, 0)
        note("expired-resume ConnectResponse: timeout=%d sessionId=%#x passwd=%s"
             % (again.timeout, again.session_id & 0xFFFFFFFFFFFFFFFF, again.passwd.hex()))
        expect_true("server closes connection after expired-session response", again.closed_by_server())
        again.drop()

        live = RawSession(self.host, self.port, 6000)
        bad = RawSession(self.host, self.port, 6000, session_id=live.session_id, passwd=b"\x01" * 16)
        expect_eq("resume with wrong password -> timeout 0", bad.timeout, 0)
        bad.drop()
        good = RawSession(self.host, self.port, 6000, session_id=live.session_id, passwd=live.passwd)
        expect_true("resume live session with right password keeps id",
                    good.timeout > 0 and good.session_id == live.session_id, repr((good.timeout, good.session_id)))
        hdr, _, _ = good.request(Create(self.p("raw-live"), b"", OPEN_ACL_UNSAFE, 1))
        expect_eq("resumed session can write", hdr.err, 0)
        hdr, _, _ = good.request(type("CloseSession", (), {"type": -11, "serialize": lambda self: b""})())
        expect_eq("closeSession reply err 0", hdr.err, 0)
        good.drop()
        live.drop()
        expect_true("closeSession removes ephemerals at once", c1.exists(self.p("raw-live")) is None)

        # kazoo resuming an expired session id gets a brand-new session
        ck = KazooClient(hosts=self.hostport, timeout=10.0, client_id=(sid, pwd))
        ck_states = []
        ck.add_listener(lambda s: ck_states.append(s))
        self.clients.append(ck)
        ck.start(timeout=WAIT * 2)
        expect_true("kazoo resume of expired session -> new session id",
                    ck.connected and ck.client_id[0] != sid, repr((ck_states, ck.client_id)))
        ck.stop()

    # ---- getAllChildrenNumber / getEphemerals ------------------------------

    def counts(self):
        c1 = self.c1
        note("kazoo %s has no getAllChildrenNumber/getEphemerals; using raw opcodes 104/103" % _kazoo_version())
        base = self.p("cnt")
        c1.create(base + "/a/b/c", makepath=True)
        c1.create(base + "/a/d")
        c1.create(base + "/e")
        expect_eq("getAllChildrenNumber counts all descendants", call(c1, GetAllChildrenNumber(base)), 5)
        expect_eq("getAllChildrenNumber of leaf is 0", call(c1, GetAllChildrenNumber(base + "/e")), 0)
        expect_raises("getAllChildrenNumber missing -> NoNode", NoNodeError,
                      call, c1, GetAllChildrenNumber(base + "/zz"))
        c1.create(base + "/eph1", ephemeral=True)
        c1.create(base + "/a/eph2", ephemeral=True)
        c1.create(self.p("cntx"), ephemeral=True)  # string prefix, not path prefix
        got = sorted(call(c1, GetEphemerals(base)))
        expect_eq("getEphemerals(prefix) lists this session's ephemerals under prefix",
                  got, sorted([base + "/eph1", base + "/a/eph2", self.p("cntx")]))
        mine = call(c1, GetEphemerals("/"))
        expect_true("getEphemerals('/') includes own ephemerals only",
                    self.p("eph") in mine and all(self.c1.exists(x).ephemeralOwner == c1.client_id[0]
                                                  for x in mine), repr(mine))
        expect_eq("getEphemerals of other session is empty", call(self.c2, GetEphemerals(self.root)), [])

    # ---- container / TTL reaping --------------------------------------------

    def reaping(self):
        wait = float(os.environ.get("E2E_REAP_WAIT", "10"))
        if wait <= 0:
            note("E2E_REAP_WAIT=0: skipping container/TTL reaping checks")
            return
        c1 = self.c1
        ctr = self.p("reap-ctr")
        call(c1, CreateContainer(ctr, b"", OPEN_ACL_UNSAFE))
        empty_ctr = self.p("reap-ctr-never")
        call(c1, CreateContainer(empty_ctr, b"", OPEN_ACL_UNSAFE))
        c1.create(ctr + "/kid")
        c1.delete(ctr + "/kid")
        ttl = self.p("reap-ttl")
        call(c1, CreateTTL(ttl, b"", OPEN_ACL_UNSAFE, 5, 500))
        t0 = time.monotonic()
        wait_until(lambda: c1.exists(ctr) is None and c1.exists(ttl) is None, timeout=wait, step=0.25)
        expect_true("empty container (had a child) is reaped", c1.exists(ctr) is None,
                    "not reaped within %.0fs (E2E_REAP_WAIT)" % wait)
        expect_true("expired childless TTL node is reaped", c1.exists(ttl) is None,
                    "not reaped within %.0fs (E2E_REAP_WAIT)" % wait)
        note("container/TTL reaped after %.1fs" % (time.monotonic() - t0))
        expect_true("container that never had children is kept", c1.exists(empty_ctr) is not None)

    # ---- recipes -----------------------------------------------------------

    def recipes(self):
        c1, c2 = self.c1, self.c2
        lock_path = self.p("lock")
        l1, l2 = c1.Lock(lock_path, "one"), c2.Lock(lock_path, "two")
        expect_true("lock: first contender acquires", l1.acquire(timeout=WAIT))
        expect_raises("lock: second contender times out (LockTimeout)", LockTimeout, l2.acquire, timeout=0.5)
        expect_eq("lock: contenders", l1.contenders(), ["one"])
        l1.release()
        expect_true("lock: second acquires after release", l2.acquire(timeout=WAIT))
        l2.release()

        holders, max_holders, total = [0], [0], [0]
        mtx = threading.Lock()
        errors = []

        def worker(client, ident):
            try:
                lk = client.Lock(lock_path, ident)
                for _ in range(8):
                    if not lk.acquire(timeout=WAIT):
                        errors.append("timeout")
                        return
                    with mtx:
                        holders[0] += 1
                        max_holders[0] = max(max_holders[0], holders[0])
                    v = int(client.get(self.p("lockcount"))[0])
                    time.sleep(0.005)
                    client.set(self.p("lockcount"), str(v + 1).encode())
                    with mtx:
                        holders[0] -= 1
                    lk.release()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        c1.create(self.p("lockcount"), b"0")
        ts = [threading.Thread(target=worker, args=(c, n)) for c, n in ((c1, "w1"), (c2, "w2"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(WAIT * 4)
        expect_true("lock: mutual exclusion under contention",
                    not errors and max_holders[0] == 1 and c1.get(self.p("lockcount"))[0] == b"16",
                    repr((errors, max_holders[0], c1.get(self.p("lockcount"))[0])))

        el_path = self.p("election")
        leader_now = threading.Event()
        release_leader = threading.Event()
        order = []

        def lead(name):
            order.append(name)
            leader_now.set()
            release_leader.wait(WAIT)

        e1, e2 = c1.Election(el_path, "e1"), c2.Election(el_path, "e2")
        t1 = threading.Thread(target=e1.run, args=(lead, "e1"))
        t1.start()
        expect_true("election: first contender leads", leader_now.wait(WAIT) and order == ["e1"], repr(order))
        leader_now.clear()
        t2 = threading.Thread(target=e2.run, args=(lead, "e2"))
        t2.start()
        wait_until(lambda: len(e1.contenders()) == 2)
        expect_eq("election: contenders in order", e1.contenders(), ["e1", "e2"])
        expect_true("election: second waits while first leads", not leader_now.wait(0.3))
        release_leader.set()
        expect_true("election: second leads after first resigns", leader_now.wait(WAIT) and order == ["e1", "e2"],
                    repr(order))
        t1.join(WAIT)
        t2.join(WAIT)

        b1, b2 = c1.Barrier(self.p("barrier")), c2.Barrier(self.p("barrier"))
        b1.create()
        expect_true("barrier: wait blocks while barrier exists", not b2.wait(0.3))
        res = []
        bt = threading.Thread(target=lambda: res.append(b2.wait(WAIT)))
        bt.start()
        time.sleep(0.2)
        b1.remove()
        bt.join(WAIT)
        expect_eq("barrier: waiter released by remove", res, [True])

        k1, k2 = c1.Counter(self.p("counter")), c2.Counter(self.p("counter"))
        k1 += 5
        k2 += 3
        k1 -= 1
        expect_eq("counter: concurrent increments", (k1.value, k2.value), (7, 7))

        q1, q2 = c1.Queue(self.p("queue")), c2.Queue(self.p("queue"))
        for item in (b"a", b"b", b"c"):
            q1.put(item)
        q1.put(b"urgent", priority=10)
        expect_eq("queue: len", len(q2), 4)
        expect_eq("queue: priority then FIFO", [q2.get(), q2.get(), q2.get(), q2.get(), q2.get()],
                  [b"urgent", b"a", b"b", b"c", None])
        lq1, lq2 = c1.LockingQueue(self.p("lqueue")), c2.LockingQueue(self.p("lqueue"))
        lq1.put(b"x")
        lq1.put(b"y")
        expect_eq("locking queue: get locks first entry", lq2.get(WAIT), b"x")
        expect_eq("locking queue: other consumer skips locked entry", lq1.get(WAIT), b"y")
        expect_true("locking queue: third consumer finds nothing free",
                    self.c1.LockingQueue(self.p("lqueue")).get(0.3) is None)
        expect_true("locking queue: consume both", lq2.consume() and lq1.consume())
        expect_eq("locking queue: empty", len(lq1), 0)


def _kazoo_version():
    try:
        import kazoo.version
        return kazoo.version.__version__
    except Exception:  # noqa: BLE001
        import kazoo
        return getattr(kazoo, "__version__", "?")


def main():
    if len(sys.argv) != 2 or ":" not in sys.argv[1]:
        print("usage: %s HOST:PORT" % sys.argv[0], file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if os.environ.get("E2E_VERBOSE") == "1" else logging.CRITICAL)
    t0 = time.monotonic()
    e2e = E2E(sys.argv[1])
    rc = 0
    try:
        e2e.run()
    except CheckFailed as e:
        print("FAIL %s" % e, flush=True)
        rc = 1
    except Exception:  # noqa: BLE001
        print("FAIL unexpected error after %d passed checks:" % PASSED, flush=True)
        traceback.print_exc()
        rc = 1
    finally:
        e2e.cleanup()
    if rc == 0:
        print("kazoo e2e: %d checks passed (%.1fs)" % (PASSED, time.monotonic() - t0))
    else:
        print("kazoo e2e: FAILED after %d passed checks (%.1fs)" % (PASSED, time.monotonic() - t0))
    return rc


if __name__ == "__main__":
    sys.exit(main())
