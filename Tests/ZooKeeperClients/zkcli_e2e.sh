#!/usr/bin/env bash
# End-to-end checks of a ZooKeeper server through Apache ZooKeeper's own CLI.
#
#   Tests/ZooKeeperClients/zkcli_e2e.sh HOST:PORT
#
# Drives /usr/share/zookeeper/bin/zkCli.sh (3.8) two ways:
#   * batches on stdin (one session; needed for ephemerals, addauth, -w watches).
#     Without JLine, zkCli reads stdin line by line and runs each command
#     synchronously; its stdout and stderr are both line-flushed, so 2>&1
#     keeps the order.  Errors ("Node does not exist: ...") go to stderr and do
#     not change the exit status in this mode.
#   * one command as arguments (own session; exit status 1 on a failed command).
# Validated against Apache ZooKeeper 3.8.0 with extendedTypesEnabled=true (for
# create -t).  Prints "zkCli e2e: N checks passed" (exit 0) or the failing
# check with the command and its output (exit 1).
set -uo pipefail

if [[ $# -ne 1 || $1 != *:* ]]; then
    echo "usage: $0 HOST:PORT" >&2
    exit 2
fi
HP=$1
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
ZKCLI_TIMEOUT=${ZKCLI_TIMEOUT:-30}  # seconds per zkCli invocation
R=/zkcli-e2e-$$-$RANDOM
# digest:user:<base64(sha1("user:pass"))>
DIGEST_ID='user:smGaoVKd/cQkjm7b88GyorAUz20='
TMP=$(mktemp -d)
PASSED=0
LAST_CMD=
OUT=
RC=0
START=$SECONDS

cleanup() {
    if [[ -n ${NEED_CLEANUP:-} ]]; then
        printf 'addauth digest user:pass\nsetAcl %s world:anyone:cdrwa\ndeleteall %s\nquit\n' "$R/ttl" "$R" |
            timeout "$ZKCLI_TIMEOUT" "$ZKCLI" -waitforconnection -timeout 10000 -server "$HP" >/dev/null 2>&1
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# Drop the JVM/connection banner so OUT holds only command output.
clean() {
    grep -v -E '^(SLF4J:.*|Connecting to .*|WATCHER::|Welcome to ZooKeeper!|JLine support is (disabled|enabled)|WatchedEvent state:(SyncConnected|Closed) type:None path:null|)$'
}

# zk ARGS...: run one command in its own session.
zk() {
    LAST_CMD="zkCli.sh -server $HP $*"
    timeout "$ZKCLI_TIMEOUT" "$ZKCLI" -waitforconnection -timeout 10000 -server "$HP" "$@" \
        </dev/null >"$TMP/raw" 2>&1
    RC=$?
    OUT=$(clean <"$TMP/raw")
}

# zkbatch <<EOF ... EOF: run the commands on stdin in one session.
zkbatch() {
    cat >"$TMP/cmds"
    echo quit >>"$TMP/cmds"
    LAST_CMD="zkCli.sh -server $HP <<EOF
$(cat "$TMP/cmds")
EOF"
    timeout "$ZKCLI_TIMEOUT" "$ZKCLI" -waitforconnection -timeout 10000 -server "$HP" \
        <"$TMP/cmds" >"$TMP/raw" 2>&1
    RC=$?
    OUT=$(clean <"$TMP/raw")
    if [[ $RC -eq 124 ]]; then
        fail "zkCli batch timed out after ${ZKCLI_TIMEOUT}s"
    fi
}

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   $1"
}

fail() {
    echo "FAIL $1"
    echo "---- command:"
    echo "$LAST_CMD"
    echo "---- exit status: $RC"
    echo "---- output (banner lines removed):"
    echo "$OUT"
    echo "zkCli e2e: FAILED after $PASSED passed checks ($((SECONDS - START))s)"
    exit 1
}

# has_line NAME LINE [COUNT]: LINE occurs verbatim (at least COUNT times).
has_line() {
    local n
    n=$(grep -cxF -- "$2" <<<"$OUT")
    if ((n >= ${3:-1})); then pass "$1"; else fail "$1: expected line '$2' ${3:-1}x, found ${n}x"; fi
}

# has_re NAME ERE: some whole line matches ERE.
has_re() {
    if grep -qxE -- "$2" <<<"$OUT"; then pass "$1"; else fail "$1: expected a line matching /$2/"; fi
}

lacks_line() {
    if grep -qxF -- "$2" <<<"$OUT"; then fail "$1: unexpected line '$2'"; else pass "$1"; fi
}

out_is() {
    if [[ $OUT == "$2" ]]; then pass "$1"; else fail "$1: expected output exactly:
$2"; fi
}

rc_is() {
    if [[ $RC -eq $2 ]]; then pass "$1"; else fail "$1: expected exit status $2, got $RC"; fi
}

# stat_block NAME N [key=ERE ...]: the Nth stat printout (as printed by stat,
# get -s, ls -s, set -s, getAcl -s) has ZooKeeper's exact 11-line format and
# the given fields match.  czxid_is_mzxid as a spec checks cZxid == mZxid.
DATE_RE='[A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [A-Za-z0-9:+-]+ [0-9]{4}'
STAT_FORMAT=(
    'cZxid = 0x[0-9a-f]+'
    "ctime = $DATE_RE"
    'mZxid = 0x[0-9a-f]+'
    "mtime = $DATE_RE"
    'pZxid = 0x[0-9a-f]+'
    'cversion = -?[0-9]+'
    'dataVersion = -?[0-9]+'
    'aclVersion = -?[0-9]+'
    'ephemeralOwner = 0x[0-9a-f]+'
    'dataLength = [0-9]+'
    'numChildren = [0-9]+'
)
stat_block() {
    local name=$1 nth=$2
    shift 2
    local block
    block=$(awk -v nth="$nth" '/^cZxid = /{k++} k==nth && c<11 {print; c++}' <<<"$OUT")
    local i line
    local -a lines
    mapfile -t lines <<<"$block"
    if ((${#lines[@]} != 11)); then
        fail "$name: stat printout #$nth not found (got ${#lines[@]} lines)"
    fi
    for i in "${!STAT_FORMAT[@]}"; do
        if ! grep -qxE -- "${STAT_FORMAT[$i]}" <<<"${lines[$i]}"; then
            fail "$name: stat line $((i + 1)) '${lines[$i]}' does not match /${STAT_FORMAT[$i]}/"
        fi
    done
    local spec
    for spec in "$@"; do
        if [[ $spec == czxid_is_mzxid ]]; then
            [[ ${lines[0]#cZxid = } == "${lines[2]#mZxid = }" ]] ||
                fail "$name: expected cZxid == mZxid: ${lines[0]} / ${lines[2]}"
            continue
        fi
        grep -qxE -- "${spec%%=*} = ${spec#*=}" <<<"$block" ||
            fail "$name: expected '${spec%%=*} = ${spec#*=}' in stat printout #$nth"
    done
    pass "$name"
}

# ---------------------------------------------------------------------------
echo "zkCli e2e against $HP, root $R"
NEED_CLEANUP=1

zkbatch <<EOF
create $R root
create $R/p hello
create -e $R/eph e
create -s $R/seq- s
create -e -s $R/es- x
create -c $R/ctr c
create -t 60000 $R/ttl t
create $R/p again
create $R/missing/x
ls $R
ls -s $R
get $R/p
get -s $R/p
stat $R/eph
getEphemerals $R
getAllChildrenNumber $R
sync $R
set $R/p world
set -s $R/p world2
set -v 99 $R/p bad
set -v 2 $R/p ok3
get -s $R/p
delete -v 7 $R/p
delete $R
stat $R/nonexist
get -w $R/p
set $R/p w
create $R/ctr/kid
create $R/empty
get $R/empty
EOF
has_line "create" "Created $R"
has_line "create with data" "Created $R/p"
has_line "create -e" "Created $R/eph"
# sequence suffix = number of children created under the parent so far (p, eph)
has_line "create -s (suffix counts prior child creates)" "Created $R/seq-0000000002"
has_line "create -e -s" "Created $R/es-0000000003"
has_line "create -c (container)" "Created $R/ctr"
has_line "create -t (TTL)" "Created $R/ttl"
has_line "create existing -> Node already exists" "Node already exists: $R/p"
has_line "create without parent -> Node does not exist" "Node does not exist: $R/missing/x"
has_line "ls and ls -s list sorted children" "[ctr, eph, es-0000000003, p, seq-0000000002, ttl]" 2
stat_block "ls -s stat printout" 1 numChildren=6 cversion=6 dataLength=4 dataVersion=0 'ephemeralOwner=0x0'
has_line "get prints data" "hello" 2
stat_block "get -s stat printout (fresh node)" 2 dataVersion=0 dataLength=5 cversion=0 aclVersion=0 \
    numChildren=0 'ephemeralOwner=0x0' czxid_is_mzxid
stat_block "stat of ephemeral: ephemeralOwner = session id" 3 'ephemeralOwner=0x[1-9a-f][0-9a-f]*' dataLength=1
has_re "getEphemerals lists both ephemerals" "\[($R/eph, $R/es-0000000003|$R/es-0000000003, $R/eph)\]"
has_line "getAllChildrenNumber" "6"
has_line "sync" "Sync is OK"
stat_block "set -s prints new stat" 4 dataVersion=2 dataLength=6
has_line "set/delete -v wrong version -> BadVersion message" "version No is not valid : $R/p" 2
stat_block "set -v matching version applied" 5 dataVersion=3 dataLength=3
has_line "get after versioned set" "ok3"
has_line "delete non-empty -> Node not empty" "Node not empty: $R"
has_line "stat missing -> Node does not exist" "Node does not exist: $R/nonexist"
has_line "get -w then set fires NodeDataChanged" "WatchedEvent state:SyncConnected type:NodeDataChanged path:$R/p"
has_line "child of container" "Created $R/ctr/kid"
has_line "create without data then get prints null" "null"

# ephemerals died with the batch session
zk stat "$R/eph"
rc_is "single command: failed stat exits 1" 1
has_line "ephemeral gone after its session closed" "Node does not exist: $R/eph"

zk get -s "$R/p"
rc_is "single command: get -s exits 0" 0
stat_block "get -s in fresh session" 1 dataVersion=4 dataLength=1 'ephemeralOwner=0x0'
[[ $(wc -l <<<"$OUT") -eq 12 && $(head -n 1 <<<"$OUT") == w ]] && pass "get -s output = data line + 11 stat lines" ||
    fail "get -s output = data line + 11 stat lines"

zk stat "$R/p"
[[ $(wc -l <<<"$OUT") -eq 11 ]] && pass "stat output is exactly 11 lines" || fail "stat output is exactly 11 lines"
stat_block "stat printout format" 1 dataVersion=4 numChildren=0

zk ls "$R"
out_is "ls after ephemerals expired" "[ctr, empty, p, seq-0000000002, ttl]"
zk getAllChildrenNumber "$R"
out_is "getAllChildrenNumber counts grandchildren" "6"
zk getAcl "$R/p"
out_is "getAcl default world:anyone cdrwa" "'world,'anyone
: cdrwa"
zk get "$R/nonexist"
rc_is "get missing exits 1" 1
out_is "get missing message" "Node does not exist: $R/nonexist"
zk getEphemerals "$R"
out_is "getEphemerals of a session without ephemerals" "[]"

zkbatch <<EOF
setAcl $R/p digest:$DIGEST_ID:cdrwa
getAcl $R/p
get $R/p
addauth digest user:wrong
get $R/p
addauth digest user:pass
get $R/p
getAcl $R/p
getAcl -s $R/p
whoami
setAcl $R/p digest:bad:rw
setAcl -v 99 $R/p world:anyone:cdrwa
setAcl $R/p world:anyone:r
setAcl $R/seq-0000000002 ip:127.0.0.1:cdrwa
setAcl $R/ttl ip:10.1.2.3:cdrwa,digest:$DIGEST_ID:cdrwa
EOF
has_line "no auth: getAcl/get -> Insufficient permission" "Insufficient permission : $R/p" 3
has_line "addauth digest then get" "w"
out_has_digest=$(grep -cxF -- "'digest,'$DIGEST_ID" <<<"$OUT")
((out_has_digest == 2)) && pass "getAcl shows digest id" || fail "getAcl shows digest id (found ${out_has_digest}x)"
stat_block "getAcl -s prints stat with aclVersion 1" 1 aclVersion=1 dataVersion=4
has_line "whoami lists digest identity" "digest: user"
has_line "whoami lists ip identity" "ip: 127.0.0.1"
has_line "setAcl malformed digest -> Acl is not valid" "Acl is not valid : $R/p"
has_line "setAcl -v wrong version -> version message" "version No is not valid : $R/p"

zk getAcl "$R/p"
out_is "setAcl world:anyone:r applied" "'world,'anyone
: r"
zk set "$R/p" x
out_is "read-only ACL: set -> Insufficient permission" "Insufficient permission : $R/p"
zk get "$R/seq-0000000002"
out_is "ip:127.0.0.1 ACL admits loopback" "s"
zk get "$R/ttl"
out_is "ip:10.1.2.3 ACL rejects loopback" "Insufficient permission : $R/ttl"

zkbatch <<EOF
addauth digest user:pass
setAcl $R/ttl world:anyone:cdrwa
deleteall $R
ls $R
EOF
has_line "deleteall removed the tree" "Node does not exist: $R"
NEED_CLEANUP=

echo "zkCli e2e: $PASSED checks passed ($((SECONDS - START))s)"
