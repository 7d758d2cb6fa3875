#!/usr/bin/env python3
"""Seeds a fresh wablast for the contract fuzz (scripts/fuzz.sh).

`fuzz_seed.py BASE_URL ADMIN_EMAIL ADMIN_PASSWORD` registers a tenant and
gives it data through the public API, as a client would: an API key, a
simulator session linked with a scan, an imported contact list, a plan from
the admin, an auto-reply, a campaign that ran, a simulated inbound message,
a second campaign left as a draft, and an uploaded image. So the fuzzer's
calls meet real rows. Prints on stdout (and nothing else) a JSON object:
the tenant's access token, and the ids of what it made by kind
(`{"token": ..., "ids": {"sessions": [...], ...}}`), which scripts/fuzz.sh
hands to the fuzzer as values to try; progress goes to stderr.

Python's standard library only: it runs before (and apart from) the
fuzzer's virtual environment.
"""

import base64
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

TIMEOUT = 60

# A 1x1 grey PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


def log(message):
    print(f"fuzz-seed: {message}", file=sys.stderr, flush=True)


class Api:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.headers = {}
        self.position = None

    def call(self, method, path, body=None, *, content_type=None, expect=(200, 201, 202)):
        headers = dict(self.headers)
        data = None
        if body is not None and content_type is None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        elif body is not None:
            data = body
            headers["content-type"] = content_type
        if self.position:
            # Read your writes: reads wait until the projections saw them.
            headers["x-wablast-position"] = self.position
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                status, raw = response.status, response.read()
                position = response.headers.get("x-wablast-position")
        except urllib.error.HTTPError as err:
            status, raw, position = err.code, err.read(), None
        answer = json.loads(raw) if raw else None
        if status not in expect:
            raise SystemExit(f"fuzz-seed: {method} {path} answered {status}: {raw[:500]!r}")
        if position and position.startswith("events:"):
            self.position = position
        return answer

    def wait_for(self, what, path, done, seconds=60):
        deadline = time.monotonic() + seconds
        while True:
            answer = self.call("GET", path)
            if done(answer):
                return answer
            if time.monotonic() > deadline:
                raise SystemExit(f"fuzz-seed: timed out waiting for {what}: {answer}")
            time.sleep(0.2)


def multipart(fields, files):
    boundary = f"wablast-{uuid.uuid4().hex}"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\ncontent-disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, mime, content) in files.items():
        parts.append(
            (
                f"--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"; "
                f'filename="{filename}"\r\ncontent-type: {mime}\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def main():
    base, admin_email, admin_password = sys.argv[1:4]

    tenant = Api(base)
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.test"
    registered = tenant.call(
        "POST",
        "/api/v1/auth/register",
        {"email": email, "password": "fuzz-password", "name": "Fuzz", "organization": "Toko Fuzz"},
    )
    token = registered["access_token"]
    tenant_id = registered["tenant"]["id"]
    tenant.headers["authorization"] = f"Bearer {token}"
    log(f"tenant {tenant_id} ({email})")

    ids = {
        kind: []
        for kind in ("sessions", "contact_lists", "campaigns", "auto_replies", "api_keys", "media", "webhooks")
    }
    ids["api_keys"].append(tenant.call("POST", "/api/v1/api-keys", {"name": "fuzz integration"})["id"])

    admin = Api(base)
    login = admin.call("POST", "/api/v1/auth/login", {"email": admin_email, "password": admin_password})
    admin.headers["authorization"] = f"Bearer {login['access_token']}"
    plan = admin.call(
        "POST",
        "/api/v1/admin/plans",
        {"name": "Fuzz 30", "period_days": 30, "points": 1000, "max_sessions": 5, "price": 150000},
    )
    admin.call("POST", f"/api/v1/admin/tenants/{tenant_id}/grant", {"plan_id": plan["id"]})
    log("granted a plan: 1000 points, 5 sessions")

    session = tenant.call("POST", "/api/v1/sessions", {"name": "Fuzz sender"})["id"]
    tenant.call("POST", f"/api/v1/sessions/{session}/start")
    tenant.wait_for("the QR code", f"/api/v1/sessions/{session}", lambda s: s["status"] == "qr")
    tenant.call("POST", f"/api/v1/sessions/{session}/simulator/scan", {"phone_number": "+6281200000001"})
    tenant.wait_for("a ready session", f"/api/v1/sessions/{session}", lambda s: s["status"] == "ready")
    idle = tenant.call("POST", "/api/v1/sessions", {"name": "Fuzz idle"})["id"]
    ids["sessions"] += [session, idle]
    log(f"session {session} ready")

    csv = "phone,name,consent,kota\n" + "".join(
        f"+62812000001{n:02},Pelanggan {n},yes,Jakarta\n" for n in range(10)
    )
    body, content_type = multipart(
        {"name": "Fuzz pelanggan", "mapping": json.dumps({"phone": "phone", "name": "name", "consent": "consent", "variables": ["kota"]})},
        {"file": ("pelanggan.csv", "text/csv", csv.encode())},
    )
    contacts = tenant.call("POST", "/api/v1/contact-lists/import", body, content_type=content_type)
    log(f"contact list {contacts['id']}: {contacts['accepted']} accepted")
    ids["contact_lists"].append(contacts["id"])

    body, content_type = multipart({}, {"file": ("promo.png", "image/png", PNG)})
    ids["media"].append(tenant.call("POST", "/api/v1/media", body, content_type=content_type)["id"])

    reply = tenant.call(
        "POST",
        "/api/v1/auto-replies",
        {"name": "Harga", "trigger": "keyword", "pattern": "harga", "response": "Halo {{name|Kak}}, cek katalog kami."},
    )

    campaign = {
        "name": "Promo fuzz",
        "contact_list_id": contacts["id"],
        "template": "{Halo|Hai} {{name|Kak}} di {{kota}}, promo diskon 20%!",
        "sender_session_ids": [session],
        "throttle": {"min_delay_ms": 0, "max_delay_ms": 10},
    }
    sent = tenant.call("POST", "/api/v1/campaigns", campaign)["id"]
    tenant.call("POST", f"/api/v1/campaigns/{sent}/start")
    tenant.wait_for(
        "the campaign to finish",
        f"/api/v1/campaigns/{sent}",
        lambda c: c["status"] in ("completed", "cancelled"),
        seconds=120,
    )
    draft = tenant.call("POST", "/api/v1/campaigns", {**campaign, "name": "Draft fuzz"})["id"]
    ids["campaigns"] += [sent, draft]
    ids["auto_replies"].append(reply["id"])
    log(f"campaign {sent} completed; one draft")

    tenant.call(
        "POST",
        f"/api/v1/sessions/{session}/simulator/inbound",
        {"from": "+6281200000100", "text": "berapa harga?"},
    )
    # A receiver that never resolves (`.invalid`, RFC 2606): its deliveries
    # fail fast and pile up as pending, for the deliveries, replay, test and
    # enable routes to have a real subscription.
    hook = tenant.call(
        "POST",
        "/api/v1/webhooks",
        {"url": "https://receiver.invalid/wablast", "events": ["*"]},
    )
    ids["webhooks"].append(hook["id"])

    print(json.dumps({"token": token, "ids": ids}))


if __name__ == "__main__":
    main()
