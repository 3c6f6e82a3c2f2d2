"""test_private_grants.py - the admin API's short-lived grants (SPEC "Who may reach a device") on
the real tetherd: POST /api/grants answers 201 with exactly {"id","token","expires"} and the token
appears nowhere else (not in GET, metrics, the log, the data dir or Redis: only its SHA-256 is
kept); GET lists grants without tokens; DELETE revokes (404 after); every malformed request is a
400 with a JSON error; the admin token, Host (421) and Origin (403) rules hold for the grants
routes (a cross-site POST makes no grant); grants expire; in a cluster (real redis-server) a grant
made on one node is listed and revoked on the other, expires everywhere, the cluster-wide cap
holds, and with Redis away a node keeps the grants it knows and refuses new ones (503). Also
`tetherd admin` (devices, device, delete, grant, grants, revoke; exit 0/1/2).

Using a grant token (tether connect, browser sign-in) and the revocation of open connections are
exercised by the tests of those paths; here, unit tests (tests/unit/test_access.c) cover them."""

import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import time

from lib import (Proc, RedisServer, TETHER, TETHERD, TestFailure, check, eq, free_port,
                 resp_command, wait_for)

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ADMIN_TOKEN = "grants-admin-token-0123456789"


def call(port, method, path, body=None, headers=None, token=None):
    """One request to the admin listener on 127.0.0.1:port. body: a dict (sent as JSON), bytes
    or None. Returns (status, headers with lowercase keys, body bytes)."""
    h = {"Host": "127.0.0.1:%d" % port}
    if token:
        h["Authorization"] = "Bearer " + token
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            c.putheader(k, v)
        if body is not None and "Content-Length" not in h and \
                h.get("Transfer-Encoding") != "chunked":
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def create(port, user="tech-jane", grants=("plant-7-*/ssh",), ttl="15m", token=None):
    body = {"user": user, "grants": list(grants)}
    if ttl is not None:
        body["ttl"] = ttl
    st, hdrs, data = call(port, "POST", "/api/grants", body, token=token)
    eq(st, 201, "POST /api/grants (body %r)" % data[:300])
    return json.loads(data), hdrs, data


def listing(port, token=None):
    st, _, data = call(port, "GET", "/api/grants", token=token)
    eq(st, 200, "GET /api/grants (body %r)" % data[:300])
    return json.loads(data)["grants"], data


def metric(port, name, token=None):
    st, _, data = call(port, "GET", "/metrics", token=token)
    eq(st, 200, "GET /metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[-1]))
    raise TestFailure("no metric %s" % name)


def iso_to_unix(s):
    return time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def all_files_text(d):
    out = b""
    for root, _, files in os.walk(d):
        for f in files:
            try:
                with open(os.path.join(root, f), "rb") as fh:
                    out += fh.read()
            except OSError:
                pass
    return out


# ---------------------------------------------------------------- one relay

def test_grant_created_listed_deleted(t):
    relay = t.relay(extra=("--access", "private", "--admin-token", ADMIN_TOKEN))
    port = relay.admin_port
    before = time.time()
    g, hdrs, raw = create(port, token=ADMIN_TOKEN)
    # exactly {"id","token","expires"}
    eq(sorted(g.keys()), ["expires", "id", "token"], "the 201 answer's fields")
    check(re.fullmatch(r"[0-9a-f]{32}", g["id"]), "id %r: 32 lowercase hex digits" % g["id"])
    check(re.fullmatch(r"ttg_[A-Za-z0-9_-]{43}", g["token"]), "token form %r" % g["token"])
    check(ISO.match(g["expires"]), "expires %r is ISO-8601 UTC" % g["expires"])
    exp = iso_to_unix(g["expires"])
    check(before + 15 * 60 - 5 <= exp <= time.time() + 15 * 60 + 5,
          "expires %s is 15 minutes from now" % g["expires"])
    eq(hdrs.get("content-type"), "application/json", "Content-Type")
    check("no-store" in hdrs.get("cache-control", ""), "the token's answer is not cached")

    # a second grant, several patterns, no ttl (the default: an hour)
    g2, _, _ = create(port, user="vendor-support", grants=("cam-*/http", "plant-7-gw/modbus"),
                      ttl=None, token=ADMIN_TOKEN)
    check(abs(iso_to_unix(g2["expires"]) - time.time() - 3600) < 10, "default ttl: an hour")
    check(g2["token"] != g["token"] and g2["id"] != g["id"], "two grants, two ids and tokens")

    grants, text = listing(port, token=ADMIN_TOKEN)
    eq([x["id"] for x in grants], [g["id"], g2["id"]], "GET lists both, oldest first")
    one = grants[0]
    eq(sorted(one.keys()), ["created", "expires", "grants", "id", "user"], "a listed grant's fields")
    eq(one["user"], "tech-jane", "user")
    eq(one["grants"], ["plant-7-*/ssh"], "patterns")
    eq(one["expires"], g["expires"], "expires as the 201 said")
    check(ISO.match(one["created"]), "created %r" % one["created"])
    eq(grants[1]["grants"], ["cam-*/http", "plant-7-gw/modbus"], "second grant's patterns")
    st, _, data = call(port, "GET", "/api/grants/" + g["id"], token=ADMIN_TOKEN)
    eq(st, 200, "GET /api/grants/ID")
    eq(json.loads(data), one, "GET /api/grants/ID is the listed object")
    eq(metric(port, "tether_access_grants", ADMIN_TOKEN), 2, "tether_access_grants")

    # the token is shown once: nowhere else
    secret = g["token"].encode()
    for path in ("/api/grants", "/api/grants/" + g["id"], "/metrics", "/api/devices", "/"):
        body = call(port, "GET", path, token=ADMIN_TOKEN)[2]
        check(secret not in body and g["token"][4:].encode() not in body,
              "the token appears in GET %s" % path)
    check(g["token"] not in relay.proc.stderr_text(), "the token appears in tetherd's log")
    check(g["token"][4:] not in relay.proc.stderr_text(), "the token's bytes are in the log")
    check(secret not in all_files_text(relay.data_dir), "the token is in the data dir")

    # DELETE revokes; again, or unknown: 404
    st, _, data = call(port, "DELETE", "/api/grants/" + g["id"], token=ADMIN_TOKEN)
    eq(st, 200, "DELETE /api/grants/ID (body %r)" % data)
    eq(json.loads(data), {"deleted": g["id"]}, "DELETE's answer")
    eq([x["id"] for x in listing(port, ADMIN_TOKEN)[0]], [g2["id"]], "GET after DELETE")
    for path in ("/api/grants/" + g["id"], "/api/grants/" + "0" * 32, "/api/grants/nope",
                 "/api/grants/" + g["id"].upper(), "/api/grants/" + g["id"] + "0"):
        st, hdrs, data = call(port, "DELETE", path, token=ADMIN_TOKEN)
        eq(st, 404, "DELETE %s" % path)
        check("error" in json.loads(data), "404 with a JSON error")
        eq(call(port, "GET", path, token=ADMIN_TOKEN)[0], 404, "GET %s" % path)
    eq(metric(port, 'tether_access_grants_total{event="created"}', ADMIN_TOKEN), 2, "created")
    eq(metric(port, 'tether_access_grants_total{event="deleted"}', ADMIN_TOKEN), 1, "deleted")
    eq(metric(port, "tether_access_grants", ADMIN_TOKEN), 1, "grants live")


def test_grant_requests_refused(t):
    relay = t.relay(extra=("--admin-token", ADMIN_TOKEN))
    port = relay.admin_port
    bad = [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b'["tech", ["*/ssh"]]', "JSON object"),
        (b'{"grants":["*/ssh"],"ttl":"15m"}', "user"),
        (b'{"user":7,"grants":["*/ssh"]}', "user"),
        (b'{"user":"","grants":["*/ssh"]}', "user"),
        (b'{"user":"two words","grants":["*/ssh"]}', "user"),
        (b'{"user":"' + b"u" * 65 + b'","grants":["*/ssh"]}', "user"),
        (b'{"user":"tech"}', "grants"),
        (b'{"user":"tech","grants":[]}', "grants"),
        (b'{"user":"tech","grants":"*/ssh"}', "grants"),
        (b'{"user":"tech","grants":[7]}', "grants"),
        (b'{"user":"tech","grants":["no-slash"]}', "no-slash"),
        (b'{"user":"tech","grants":["a/b/c"]}', "a/b/c"),
        (json.dumps({"user": "tech", "grants": ["d%d/s" % i for i in range(65)]}).encode(),
         "grants"),
        (b'{"user":"tech","grants":["*/ssh"],"ttl":"soon"}', "ttl"),
        (b'{"user":"tech","grants":["*/ssh"],"ttl":"0s"}', "ttl"),
        (b'{"user":"tech","grants":["*/ssh"],"ttl":"31d"}', "ttl"),
        (b'{"user":"tech","grants":["*/ssh"],"ttl":-5}', "ttl"),
        (b'{"user":"tech","grants":["*/ssh"],"ttl":null}', "ttl"),
        (b'{"user":"tech","grants":["*/ssh"],"TTL":"1m"}', "unknown field"),
        (b'{"user":"tech","user":"other","grants":["*/ssh"]}', "not JSON"),
    ]
    for body, want in bad:
        st, hdrs, data = call(port, "POST", "/api/grants", body, token=ADMIN_TOKEN)
        eq(st, 400, "POST %r (answer %r)" % (body[:80], data[:200]))
        eq(hdrs.get("content-type"), "application/json", "400's Content-Type")
        err = json.loads(data)["error"]
        check(want in err, "POST %r: error %r should mention %r" % (body[:80], err, want))
    # 64 patterns and 30 days are fine; a ttl in seconds too
    create(port, grants=["d%d/s" % i for i in range(64)], ttl="30d", token=ADMIN_TOKEN)
    g, _, _ = create(port, ttl=90, token=ADMIN_TOKEN)
    check(abs(iso_to_unix(g["expires"]) - time.time() - 90) < 5, "ttl 90 (seconds)")
    eq(len(listing(port, ADMIN_TOKEN)[0]), 2, "only the good requests made grants")

    # too large a body: 413; chunked: 411 (no grant either way)
    big = json.dumps({"user": "tech", "grants": ["*/ssh"], "pad": "x" * 20000}).encode()
    eq(call(port, "POST", "/api/grants", big, token=ADMIN_TOKEN)[0], 413, "a 20 KB body")
    st = call(port, "POST", "/api/grants", b"", token=ADMIN_TOKEN,
              headers={"Transfer-Encoding": "chunked"})[0]
    check(st in (400, 411), "a chunked body: %d" % st)
    # methods
    for method, path, allow in (("PUT", "/api/grants", "POST"),
                                ("DELETE", "/api/grants", "POST"),
                                ("POST", "/api/grants/" + g["id"], "DELETE"),
                                ("PATCH", "/api/grants/" + g["id"], "DELETE")):
        st, hdrs, _ = call(port, method, path, b"{}", token=ADMIN_TOKEN)
        eq(st, 405, "%s %s" % (method, path))
        check(allow in hdrs.get("allow", ""), "%s %s: Allow %r" % (method, path, hdrs.get("allow")))
    eq(len(listing(port, ADMIN_TOKEN)[0]), 2, "still two grants")


def test_grants_follow_admin_rules(t):
    """The admin token, the Host check (421, DNS rebinding) and the Origin check (403,
    cross-site requests) hold for the grants routes: a page on another site cannot make a grant
    (a token for itself) nor revoke one."""
    relay = t.relay(extra=("--admin-token", ADMIN_TOKEN))
    port = relay.admin_port
    body = {"user": "evil", "grants": ["*/*"], "ttl": "30d"}
    for token in (None, "wrong-token", ADMIN_TOKEN + "x"):
        st, hdrs, _ = call(port, "POST", "/api/grants", body, token=token)
        eq(st, 401, "POST with admin token %r" % token)
        eq(call(port, "GET", "/api/grants", token=token)[0], 401, "GET with token %r" % token)
    g, _, _ = create(port, token=ADMIN_TOKEN)
    own = "127.0.0.1:%d" % port
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1",
                   "https://127.0.0.1:%d" % port):
        st, _, data = call(port, "POST", "/api/grants", body, token=ADMIN_TOKEN,
                           headers={"Origin": origin})
        eq(st, 403, "POST from Origin %s (answer %r)" % (origin, data[:100]))
        check(b"token" not in data or b"ttg_" not in data, "a refused POST shows no token")
        st, _, _ = call(port, "DELETE", "/api/grants/" + g["id"], token=ADMIN_TOKEN,
                        headers={"Origin": origin})
        eq(st, 403, "DELETE from Origin %s" % origin)
    for host in ("evil.example", "evil.example:%d" % port, "10.1.2.3:%d" % port):
        eq(call(port, "POST", "/api/grants", body, token=ADMIN_TOKEN, headers={"Host": host})[0],
           421, "POST with Host %s" % host)
        eq(call(port, "GET", "/api/grants", token=ADMIN_TOKEN, headers={"Host": host})[0], 421,
           "GET with Host %s" % host)
    grants = listing(port, ADMIN_TOKEN)[0]
    eq([x["user"] for x in grants], ["tech-jane"], "no grant made or deleted by refused requests")
    # the listener's own origin may (the dashboard's)
    st, _, _ = call(port, "POST", "/api/grants", body, token=ADMIN_TOKEN,
                    headers={"Origin": "http://%s" % own})
    eq(st, 201, "POST from the listener's own origin")


def test_grant_expires(t):
    relay = t.relay(extra=("--access", "private"))
    port = relay.admin_port
    short, _, _ = create(port, ttl="2s")
    long_, _, _ = create(port, user="other", ttl="1h")
    eq(len(listing(port)[0]), 2, "both listed at first")
    wait_for(lambda: [x["id"] for x in listing(port)[0]] == [long_["id"]], 15,
             "the 2s grant to expire")
    eq(call(port, "GET", "/api/grants/" + short["id"])[0], 404, "an expired grant is unknown")
    eq(call(port, "DELETE", "/api/grants/" + short["id"])[0], 404, "and cannot be deleted")
    # the store forgets it (the sweep), counted once
    wait_for(lambda: metric(port, 'tether_access_grants_total{event="expired"}') == 1, 15,
             "tether_access_grants_total{event=\"expired\"} 1")
    eq(metric(port, "tether_access_grants"), 1, "one grant live")
    check(re.search(r"grant expired id=%s" % short["id"], relay.proc.stderr_text()),
          "the expiry is logged")


# ---------------------------------------------------------------- a cluster

def _nodes(t, n=2):
    from test_cluster import _free_range_all, _node
    redis = RedisServer(t)
    low, high = _free_range_all(t)
    nodes = [_node(t, redis, "node-%c" % (ord("a") + i), "127.0.0.%d" % (2 + i), (low, high),
                   extra=("--access", "private")) for i in range(n)]
    return redis, nodes


def _redis(redis, *args):
    with socket.create_connection(("127.0.0.1", redis.port), timeout=10) as s:
        return resp_command(s, *args)


def test_grants_shared_by_cluster(t):
    redis, (a, b) = _nodes(t)
    g, _, _ = create(a.admin_port, user="tech-jane", grants=("plant-7-*/ssh",))
    # B lists it at once (GET reads Redis) and knows it within a beat in any case
    eq([x["id"] for x in listing(b.admin_port)[0]], [g["id"]], "node B lists A's grant")
    wait_for(lambda: metric(b.admin_port, "tether_access_grants") == 1, 10,
             "node B's store to hold the grant")
    # Redis keeps the token's SHA-256, never the token
    rec = _redis(redis, "HGET", "tether:grants", g["id"])
    check(rec is not None, "the grant is in Redis")
    rec = json.loads(rec)
    eq(rec["hash"], hashlib.sha256(g["token"].encode()).hexdigest(), "Redis holds the SHA-256")
    dump = b"".join(x if isinstance(x, bytes) else str(x).encode()
                    for x in _redis(redis, "HGETALL", "tether:grants"))
    check(g["token"].encode() not in dump and g["token"][4:].encode() not in dump,
          "the token is in Redis")
    for n in (a, b):
        check(g["token"] not in n.proc.stderr_text(), "the token is in %s's log" % n.name)

    # a second one made on B; DELETE on B of A's grant revokes it everywhere
    g2, _, _ = create(b.admin_port, user="vendor", grants=("cam-*/http",))
    eq(sorted(x["id"] for x in listing(a.admin_port)[0]), sorted([g["id"], g2["id"]]),
       "node A lists both")
    st, _, _ = call(b.admin_port, "DELETE", "/api/grants/" + g["id"])
    eq(st, 200, "DELETE on node B of A's grant")
    eq([x["id"] for x in listing(a.admin_port)[0]], [g2["id"]], "node A no longer lists it")
    # node A's store lets it go within about a beat, without being asked
    wait_for(lambda: metric(a.admin_port, "tether_access_grants") == 1, 5,
             "node A's store to drop the deleted grant")
    check("grant revoked on another node id=%s" % g["id"] in a.proc.stderr_text() or
          "grant gone from redis id=%s" % g["id"] in a.proc.stderr_text(),
          "node A logs the revocation it read")
    eq(call(a.admin_port, "DELETE", "/api/grants/" + g["id"])[0], 404, "deleted twice: 404")

    # a short grant expires on every node
    g3, _, _ = create(a.admin_port, user="brief", ttl="2s")
    wait_for(lambda: metric(b.admin_port, "tether_access_grants") == 2, 5,
             "node B to learn the short grant")
    for n in (a, b):
        wait_for(lambda: metric(n.admin_port, "tether_access_grants") == 1, 15,
                 "the short grant to expire on %s" % n.name)
    wait_for(lambda: _redis(redis, "HEXISTS", "tether:grants", g3["id"]) == 0, 10,
             "the short grant to leave Redis")
    eq([x["id"] for x in listing(b.admin_port)[0]], [g2["id"]], "node B lists the live one only")


def test_cluster_redis_away_and_back(t):
    """Redis unreachable: a node keeps the grants it knows (each until its expiry) and refuses to
    make or revoke one (503, nothing changed). Redis back, empty (it lost its data): the grants
    are gone on every node, as Redis is the record."""
    redis, (a, b) = _nodes(t)
    g, _, _ = create(a.admin_port)
    wait_for(lambda: metric(b.admin_port, "tether_access_grants") == 1, 10, "B learns the grant")
    port = redis.port
    redis.proc.stop()
    st, _, data = call(a.admin_port, "POST", "/api/grants",
                       {"user": "tech", "grants": ["*/ssh"], "ttl": "5m"})
    eq(st, 503, "POST with Redis away (answer %r)" % data[:200])
    check(b"ttg_" not in data, "no token from a refused POST")
    eq(call(b.admin_port, "DELETE", "/api/grants/" + g["id"])[0], 503, "DELETE with Redis away")
    for n in (a, b):
        eq([x["id"] for x in listing(n.admin_port)[0]], [g["id"]],
           "%s keeps the grant it knows" % n.name)
    time.sleep(2.5)  # a few beats without Redis
    for n in (a, b):
        eq(metric(n.admin_port, "tether_access_grants"), 1, "%s still holds it" % n.name)
        check(metric(n.admin_port, "tether_access_grants_redis_failures_total") >= 1,
              "%s counts its failed Redis calls" % n.name)
    RedisServer(t, port=port)
    # Redis lost everything: the nodes find no grants there and drop theirs
    for n in (a, b):
        wait_for(lambda: metric(n.admin_port, "tether_access_grants") == 0, 20,
                 "%s to drop the grants Redis no longer has" % n.name)
    g2, _, _ = create(b.admin_port, user="after")
    wait_for(lambda: [x["id"] for x in listing(a.admin_port)[0]] == [g2["id"]], 10,
             "a grant made after Redis came back is shared")


def test_cluster_grants_cap(t):
    """The cap on live grants holds for the whole cluster: with 10,000 grants in Redis a create
    is refused with 503 and a clear error, on any node; each node reads all of them."""
    redis, (a, b) = _nodes(t)
    # 9,999 grants written straight into Redis (as nodes write them), then one through the API
    fill = ("local exp=tonumber(ARGV[1]) "
            "for i=1,9999 do "
            "  local id=string.format('%032x',i) "
            "  redis.call('HSET','tether:grants',id,cjson.encode({user='bulk',grants={'d/s'},"
            "created=exp-600000,expires=exp,hash=string.format('%064x',i)})) "
            "  redis.call('ZADD','tether:grants:exp',exp,id) "
            "end "
            "redis.call('SET','tether:grants:epoch','bulk-epoch-0000000000000000000') "
            "redis.call('INCRBY','tether:grants:gen',9999) "
            "return 1")
    exp_ms = int((time.time() + 3600) * 1000)
    eq(_redis(redis, "EVAL", fill, "0", str(exp_ms)), 1, "filling Redis")
    last, _, _ = create(a.admin_port, user="last-one")
    for n in (a, b):
        st, _, data = call(n.admin_port, "POST", "/api/grants",
                           {"user": "one-too-many", "grants": ["*/ssh"], "ttl": "5m"})
        eq(st, 503, "POST at the cap on %s (answer %r)" % (n.name, data[:200]))
        check("10000 grants live already" in json.loads(data)["error"], "the error says why")
    for n in (a, b):
        wait_for(lambda: metric(n.admin_port, "tether_access_grants") == 10000, 20,
                 "%s to read the 10,000 grants" % n.name)
    grants = listing(b.admin_port)[0]
    eq(len(grants), 10000, "GET lists 10,000 grants")
    # one deleted: room for one more
    eq(call(b.admin_port, "DELETE", "/api/grants/" + last["id"])[0], 200, "DELETE")
    create(b.admin_port, user="room-again")


# ---------------------------------------------------------------- tetherd admin

def _admin_cli(relay, *args, token=ADMIN_TOKEN, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k != "TETHER_ADMIN_TOKEN"}
    if token is not None:
        env["TETHER_ADMIN_TOKEN"] = token
    env.update(extra_env or {})
    return subprocess.run([TETHERD, "admin", "--admin-url",
                           "http://127.0.0.1:%d" % relay.admin_port] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          env=env)


def test_tetherd_admin_cli(t):
    relay = t.relay(extra=("--admin-token", ADMIN_TOKEN))
    svc = t.http_service()
    echo = t.tcp_echo()
    agent = t.agent(relay, name="pi-kitchen", http=svc.port, tcp={"ssh": echo.port})
    port = agent.tcp_port("ssh")

    r = _admin_cli(relay, "devices")
    eq(r.returncode, 0, "devices (stderr %r)" % r.stderr)
    lines = r.stdout.splitlines()
    check(lines[0].split()[:2] == ["NAME", "STATE"], "a table with a header: %r" % lines[:1])
    row = [l for l in lines if l.startswith("pi-kitchen ")]
    check(row and "online" in row[0] and "ssh:%d" % port in row[0] and agent.label in row[0],
          "the device's row: %r" % lines)
    r = _admin_cli(relay, "devices", "--json")
    eq(r.returncode, 0, "devices --json")
    api = json.loads(call(relay.admin_port, "GET", "/api/devices", token=ADMIN_TOKEN)[2])
    got = json.loads(r.stdout)
    eq([d["name"] for d in got["devices"]], [d["name"] for d in api["devices"]],
       "devices --json is the API's JSON")
    r = _admin_cli(relay, "device", "pi-kitchen")
    eq(r.returncode, 0, "device NAME")
    check("name:            pi-kitchen" in r.stdout and "state:           online" in r.stdout,
          "device NAME: %r" % r.stdout)
    r = _admin_cli(relay, "device", "pi-kitchen", "--json")
    eq(json.loads(r.stdout)["label"], agent.label, "device NAME --json")

    # grant prints the token alone on stdout; the API lists the grant
    r = _admin_cli(relay, "grant", "tech-jane", "plant-7-*/ssh", "cam-*/http", "--ttl", "15m")
    eq(r.returncode, 0, "grant (stderr %r)" % r.stderr)
    tok = r.stdout.strip()
    check(re.fullmatch(r"ttg_[A-Za-z0-9_-]{43}", tok), "grant prints the token: %r" % r.stdout)
    grants = listing(relay.admin_port, ADMIN_TOKEN)[0]
    eq([(g["user"], g["grants"]) for g in grants],
       [("tech-jane", ["plant-7-*/ssh", "cam-*/http"])], "the grant made")
    r = _admin_cli(relay, "grants")
    check(r.returncode == 0 and grants[0]["id"] in r.stdout and tok not in r.stdout,
          "grants lists it without its token: %r" % r.stdout)
    r = _admin_cli(relay, "revoke", grants[0]["id"])
    eq((r.returncode, r.stdout.strip()), (0, "revoked " + grants[0]["id"]), "revoke")
    eq(listing(relay.admin_port, ADMIN_TOKEN)[0], [], "no grant left")

    # refusals by the API: exit 1, one line on stderr
    for args in (("device", "nope"), ("delete", "nope"), ("revoke", "0" * 32)):
        r = _admin_cli(relay, *args)
        eq(r.returncode, 1, "%s (stderr %r)" % (" ".join(args), r.stderr))
        check("404" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
              "one line naming the refusal: %r" % r.stderr)
    r = _admin_cli(relay, "devices", token=None)
    eq(r.returncode, 1, "no admin token")
    check("401" in r.stderr and "TETHER_ADMIN_TOKEN" in r.stderr, "401 explained: %r" % r.stderr)
    eq(_admin_cli(relay, "devices", token="wrong-token").returncode, 1, "a wrong admin token")
    # the token from a file
    f = t.path("admin.tok")
    with open(f, "w") as fh:
        fh.write(ADMIN_TOKEN + "\n")
    r = _admin_cli(relay, "--admin-token-file", f, "devices", token=None)
    eq(r.returncode, 0, "--admin-token-file (stderr %r)" % r.stderr)
    # usage errors: exit 2, nothing sent
    for args in ((), ("frob",), ("devices", "extra"), ("device",), ("grant", "tech"),
                 ("grant", "tech", "*/ssh"), ("grant", "tech", "nopattern", "--ttl", "5m"),
                 ("grant", "two words", "*/ssh", "--ttl", "5m"),
                 ("grant", "tech", "*/ssh", "--ttl", "31d"), ("delete", "x", "--json"),
                 ("devices", "--bogus")):
        r = _admin_cli(relay, *args)
        eq(r.returncode, 2, "tetherd admin %s (stderr %r)" % (" ".join(args), r.stderr))
        check(r.stderr.startswith("tetherd admin: ") and r.stdout == "",
              "one line on stderr: %r" % r.stderr)
    eq(listing(relay.admin_port, ADMIN_TOKEN)[0], [], "usage errors made no grant")
    r = subprocess.run([TETHERD, "admin", "--admin-url", "http://127.0.0.1:1", "devices"],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 1, "an admin listener that cannot be reached")
    # delete frees the device
    r = _admin_cli(relay, "delete", "pi-kitchen")
    eq((r.returncode, r.stdout.strip()), (0, "deleted pi-kitchen"), "delete NAME")
    r = subprocess.run([TETHERD, "admin", "--help"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and "grant USER PATTERN... --ttl DURATION" in r.stdout, "--help")


# ---------------------------------------------------------------- grants in use (tether connect)
#
# These need the visitor endpoint and `tether connect` (built beside the grant store): when the
# tether under test has no `connect` command they return at once, saying so on stdout.

def _connect_available():
    r = subprocess.run([TETHER, "connect", "--help"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or "--grant" not in r.stdout:
        print("skipped: this tether has no `connect` command")
        return False
    return True


class _Listener:
    """tether connect --grant TOKEN DEVICE/SERVICE --listen PORT (waits for its line)."""

    def __init__(self, t, server, target, token):
        self.port = free_port()
        self.proc = Proc(t, "tether", [TETHER, "connect", "--server", server, "--grant", token,
                                       target, "--listen", "127.0.0.1:%d" % self.port])
        self.proc.wait_line(lambda l: l.startswith("listening 127.0.0.1:%d -> %s" %
                                                   (self.port, target)), 30, 0, "listening")


def _echo_once(s, data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        b = s.recv(65536)
        if not b:
            break
        got += b
    return got


def _closed(s, timeout=10):
    """True when the peer closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def _echo_world(t, extra=(), relay=None):
    echo = t.tcp_echo()
    relay = relay or t.relay(extra=("--access", "private") + tuple(extra))
    agent = t.agent(relay, name="plant-7-gw", tcp={"echo": echo.port})
    return relay, agent, echo


def test_grant_deleted_or_expired_closes_its_connections(t):
    if not _connect_available():
        return
    relay, agent, _ = _echo_world(t)
    port = relay.admin_port
    g1, _, _ = create(port, user="tech-a", grants=("plant-7-*/echo",), ttl="15m")
    g2, _, _ = create(port, user="tech-b", grants=("plant-7-gw/echo",), ttl="4s")
    l1 = _Listener(t, relay.url, "plant-7-gw/echo", g1["token"])
    l2 = _Listener(t, relay.url, "plant-7-gw/echo", g2["token"])
    s1 = socket.create_connection(("127.0.0.1", l1.port), timeout=20)
    s2 = socket.create_connection(("127.0.0.1", l2.port), timeout=20)
    eq(_echo_once(s1, b"one"), b"one", "echo with grant 1")
    eq(_echo_once(s2, b"two"), b"two", "echo with grant 2")
    # DELETE closes grant 1's open connection at once; grant 2's stays
    eq(call(port, "DELETE", "/api/grants/" + g1["id"])[0], 200, "DELETE grant 1")
    check(_closed(s1), "the connection under the deleted grant stays open")
    eq(_echo_once(s2, b"still"), b"still", "the other grant's connection still works")
    eq(metric(port, "tether_access_revoked_total"), 1, "tether_access_revoked_total")
    check("access revoked user=tech-a grant=%s" % g1["id"] in relay.proc.stderr_text(),
          "the revocation is logged")
    # a new connection with the deleted grant's token is refused (closed)
    s3 = socket.create_connection(("127.0.0.1", l1.port), timeout=20)
    check(_closed(s3, 20), "a new connection with a revoked token is closed")
    # grant 2 expires: its connection is closed within about a second of its expiry
    check(_closed(s2, 20), "the connection under the expired grant stays open")
    eq(metric(port, "tether_access_revoked_total"), 2, "tether_access_revoked_total")
    for s in (s1, s2, s3):
        s.close()


def _upgrade(port, device, service, auth, source="127.0.0.1", timeout=20):
    """The visitor's WebSocket upgrade (raw), from source; returns the status code."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether-connect.v1\r\n"
                   "Tether-Device: %s\r\nTether-Service: %s\r\n%s\r\n" %
                   (port, device, service,
                    "Authorization: %s\r\n" % auth if auth else "")).encode())
        data = b""
        while b"\r\n" not in data:
            b = s.recv(4096)
            if not b:
                break
            data += b
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    finally:
        s.close()


def test_guessing_grant_tokens_and_secrets_is_throttled(t):
    """The attack: an address guesses grant tokens (and users' secrets) as fast as it can. Each
    address gets 10 failures at once, then one a second; the rest are refused unchecked (429),
    even the right token; other addresses are not affected."""
    if not _connect_available():
        return
    users = t.path("users")
    with open(users, "w") as f:
        f.write("alice alice-s3cret plant-7-gw/*\n")
    relay, agent, _ = _echo_world(t, extra=("--users-file", users))
    g, _, _ = create(relay.admin_port, user="tech", grants=("plant-7-gw/echo",), ttl="15m")
    import base64
    for kind, source in (("token", "127.0.0.2"), ("secret", "127.0.0.3")):
        counts = {}
        start = time.monotonic()
        for i in range(200):
            if kind == "token":
                auth = "Bearer ttg_" + base64.urlsafe_b64encode(os.urandom(32)).decode()[:43]
            else:
                auth = "Basic " + base64.b64encode(b"alice:guess-%d" % i).decode()
            st = _upgrade(relay.port, "plant-7-gw", "echo", auth, source)
            counts[st] = counts.get(st, 0) + 1
        elapsed = time.monotonic() - start
        checked = counts.get(401, 0)
        eq(sorted(counts), [401, 429], "%s guesses answered 401 or 429: %r" % (kind, counts))
        check(checked <= 10 + int(elapsed) + 2,
              "%d of 200 %s guesses were checked in %.1fs (at most %d may be): %r" %
              (checked, kind, elapsed, 10 + int(elapsed) + 2, counts))
        print("%s guesses from %s: %r in %.1fs" % (kind, source, counts, elapsed))
        # even the right credential is refused unchecked from that address...
        right = ("Bearer " + g["token"] if kind == "token" else
                 "Basic " + base64.b64encode(b"alice:alice-s3cret").decode())
        eq(_upgrade(relay.port, "plant-7-gw", "echo", right, source), 429,
           "the right %s from the guessing address" % kind)
    # ...and accepted from another
    eq(_upgrade(relay.port, "plant-7-gw", "echo", "Bearer " + g["token"], "127.0.0.1"), 101,
       "the right token from another address")
    throttled = metric(relay.admin_port, 'tether_access_checks_total{result="throttled"}')
    check(throttled >= 2 * 200 - 2 * (10 + 30), "tether_access_checks_total throttled %d" %
          throttled)
    eq(metric(relay.admin_port, "tether_access_throttle_addresses"), 2, "addresses tracked")
    log = [l for l in relay.proc.stderr_text().splitlines() if "127.0.0.2" in l]
    check(len(log) <= 5, "%d log lines about the guesser:\n%s" % (len(log), "\n".join(log[:10])))


def test_cluster_grant_used_and_revoked_on_another_node(t):
    """A grant made on node A works at once through node B, and deleting it on either node
    closes the connections made under it, wherever they are."""
    if not _connect_available():
        return
    redis, (a, b) = _nodes(t)
    echo = t.tcp_echo()
    t.agent(a, name="plant-7-gw", tcp={"echo": echo.port}, server=a.url)
    g, _, _ = create(a.admin_port, user="tech", grants=("plant-7-*/echo",), ttl="15m")
    lb = _Listener(t, b.url, "plant-7-gw/echo", g["token"])  # made on A, used through B at once
    la = _Listener(t, a.url, "plant-7-gw/echo", g["token"])
    sb = socket.create_connection(("127.0.0.1", lb.port), timeout=20)
    sa = socket.create_connection(("127.0.0.1", la.port), timeout=20)
    eq(_echo_once(sb, b"via B"), b"via B", "echo through node B")
    eq(_echo_once(sa, b"via A"), b"via A", "echo through node A")
    eq(call(b.admin_port, "DELETE", "/api/grants/" + g["id"])[0], 200, "DELETE on node B")
    check(_closed(sb, 10), "the connection through node B stays open")
    check(_closed(sa, 10), "the connection through node A stays open")
    revoked = sum(metric(n.admin_port, "tether_access_revoked_total") for n in (a, b))
    check(revoked >= 2, "tether_access_revoked_total over the nodes: %d" % revoked)
    sa.close()
    sb.close()


def test_users_file_reload_closes_a_removed_users_connection(t):
    """SIGHUP with a users file that no longer has alice (and takes bob's grant away): their open
    connections close at once; carol's stays."""
    if not _connect_available():
        return
    import signal
    users = t.path("users")
    with open(users, "w") as f:
        f.write("alice alice-s3cret plant-7-gw/*\nbob bob-s3cret plant-7-*/echo\n"
                "carol carol-s3cret */echo\n")
    relay, agent, _ = _echo_world(t, extra=("--users-file", users))
    socks = {}
    for user in ("alice", "bob", "carol"):
        port = free_port()
        p = Proc(t, "tether", [TETHER, "connect", "--server", relay.url, "--user", user,
                               "--secret", user + "-s3cret", "plant-7-gw/echo", "--listen",
                               "127.0.0.1:%d" % port])
        p.wait_line(lambda l: l.startswith("listening "), 30, 0, "listening")
        socks[user] = socket.create_connection(("127.0.0.1", port), timeout=20)
        eq(_echo_once(socks[user], user.encode()), user.encode(), "echo for %s" % user)
    with open(users, "w") as f:
        f.write("# alice left\nbob bob-s3cret plant-8-*/echo\ncarol carol-s3cret */echo\n")
    relay.proc.send_signal(signal.SIGHUP)
    check(_closed(socks["alice"], 10), "alice's connection stays open after the reload")
    check(_closed(socks["bob"], 10), "bob's connection stays open after his grant went")
    eq(_echo_once(socks["carol"], b"still here"), b"still here", "carol's connection")
    eq(metric(relay.admin_port, "tether_access_revoked_total"), 2, "revoked connections")
    for s in socks.values():
        s.close()


def test_tetherd_admin_follows_pages_and_sends_the_token(t):
    """Against a stand-in admin API that pages its device list (SPEC: limit/after/next):
    `tetherd admin devices` reads every page, sends the token and a Host naming the listener,
    and prints one document; an answer that is not JSON is a failure (exit 1)."""
    import http.server
    import threading
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization"), self.headers.get("Host")))
            if self.path == "/api/devices":
                body = {"devices": [{"name": "a-1", "online": True}], "total": 2, "next": "a-1"}
            elif self.path == "/api/devices?after=a-1":
                body = {"devices": [{"name": "b 2", "online": False}], "total": 2, "next": None}
            else:
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"nope!")
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    t.on_cleanup(srv.shutdown)
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    env = dict(os.environ, TETHER_ADMIN_TOKEN="tok-123456")
    r = subprocess.run([TETHERD, "admin", "--admin-url", url + "/", "devices", "--json"],
                       capture_output=True, text=True, timeout=60, env=env)
    eq(r.returncode, 0, "devices --json over two pages (stderr %r)" % r.stderr)
    eq([d["name"] for d in json.loads(r.stdout)["devices"]], ["a-1", "b 2"], "both pages")
    eq(seen[0], ("/api/devices", "Bearer tok-123456", "127.0.0.1:%d" % srv.server_address[1]),
       "the first request")
    eq(seen[1][0], "/api/devices?after=a-1", "the second page asked for")
    r = subprocess.run([TETHERD, "admin", "--admin-url", url, "devices"],
                       capture_output=True, text=True, timeout=60, env=env)
    check(r.returncode == 0 and "a-1" in r.stdout and "b 2" in r.stdout, "the table: %r" %
          r.stdout)
    r = subprocess.run([TETHERD, "admin", "--admin-url", url, "grants"],
                       capture_output=True, text=True, timeout=60, env=env)
    eq(r.returncode, 1, "an answer that is not the API's (stderr %r)" % r.stderr)
