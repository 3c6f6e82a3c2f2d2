"""test_browser.py - a real browser (headless Chromium, Debian's package) on the device URL
http://LABEL.localhost:PORT/: the page loads, its script's fetch() and WebSocket reach the
device through the relay. Chromium resolves *.localhost to loopback by itself, as the README
promises. scripts/deps.sh installs chromium for `make test`; a missing browser fails the test."""

import os
import shutil
import subprocess
import tempfile

from lib import check, device

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--no-proxy-server",
]


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _dump_dom(url, timeout=60):
    exe = _chromium()
    check(exe, "chromium is not installed (scripts/deps.sh test installs it)")
    profile = tempfile.mkdtemp(prefix="tether-chromium-")
    try:
        r = subprocess.run([exe] + CHROMIUM_FLAGS + [
            "--user-data-dir=" + profile, "--virtual-time-budget=10000", "--dump-dom", url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
            env=dict(os.environ, HOME=profile))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def test_chromium_loads_device_page_with_fetch_and_websocket(t):
    relay, svc, agent = device(t, big_size=1024)
    url = "http://%s.localhost:%d/app" % (agent.label, relay.port)
    # --dump-dom snapshots the page once its virtual time budget is spent; an open WebSocket
    # does not hold virtual time back, so on a loaded machine the snapshot can come before the
    # echo. A page still "pending" is loaded again (at most 3 times); a failure is never retried.
    for _ in range(3):
        dom, err = _dump_dom(url)
        if "pending" not in dom:
            break
    check("Tether browser check" in dom, "chromium did not get the page: dom=%r stderr=%r" %
          (dom[:300], err[-600:]))
    check("fetch: device" in dom, "the page's fetch() did not reach the device: %r" % dom[:600])
    check("ws: ping-from-browser" in dom,
          "the page's WebSocket echo through the relay failed: %r" % dom[:600])


def test_chromium_gets_the_404_page_for_an_unknown_label(t):
    relay, _, _ = device(t, big_size=1024)
    dom, err = _dump_dom("http://nosuchlabel0.localhost:%d/" % relay.port)
    check("Unknown device" in dom,
          "chromium did not show the 404 page: dom=%r stderr=%r" % (dom[:300], err[-300:]))
