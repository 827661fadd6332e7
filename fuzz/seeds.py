#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus, seeds/<target>/<name>, from the providers' official
test vectors (verbatim; their sources are in ../../shared/PROVIDERS.md, section A) and, where a
provider publishes none, from the derived vectors of its section B, recomputed here with
Python's own hmac so that they share no code with the crate.

Run it from anywhere: python3 fuzz/seeds.py. The requests use the text form that
fuzz/src/lib.rs reads: "<preset> <now>\\n<uri>\\n<headers>\\n\\n<body>".
"""

import base64
import hashlib
import hmac
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent / "seeds"


def mac(algo, key, msg):
    return hmac.new(key.encode(), msg.encode(), algo)


def request(preset, now, headers, body, uri="/hook"):
    head = "".join(f"{name}: {value}\n" for name, value in headers)
    return f"{preset} {now}\n{uri}\n{head}\n".encode() + (body if isinstance(body, bytes) else body.encode())


# Stripe A3: stripe-dotnet EventUtilityTest with event_test_signature.json.
STRIPE_BODY = """{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"""
STRIPE_HEADER = ("t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,"
                 "v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef")

# Razorpay A10: razorpay-python test_client_utility.py with its fixture (trailing newline).
RAZORPAY_BODY = """{
  "event": "payment.authorized",
  "entity": "event",
  "contains": [
    "payment"
  ],
  "payload": {
    "payment": {
      "entity": {
        "id": "pay_6koWN7bvxujzxM",
        "entity": "payment",
        "amount": 1000000,
        "currency": "INR",
        "status": "captured",
        "order_id": "order_100000000order",
        "international": false,
        "method": "card",
        "amount_refunded": 0,
        "refund_status": null,
        "captured": true,
        "description": "random description",
        "card_id": "card_6koWNAT6LASUqy",
        "bank": null,
        "wallet": null,
        "vpa": null,
        "email": "a@b.com",
        "contact": "+919999999999",
        "notes": {
          "merchant_order_id": "random order id"
        },
        "fee": 23000,
        "service_tax": 3000,
        "error_code": null,
        "error_description": null,
        "created_at": 1479978483
      }
    }
  },
  "created_at": 1400826760
}
"""

SLACK_BODY = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
              "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
              "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
              "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_BODY = "To=%2B18005551212&From=%2B14158675309&Digits=1234&CallSid=CA1234567890ABCDE&Caller=%2B14158675309"
SQUARE_BODY = ('{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":'
               '"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z",'
               '"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}')
SENDGRID_BODY = ('[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":'
                 '"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":'
                 '"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":'
                 '"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n')
assert len(SENDGRID_BODY.encode()) == 327


def derived():
    """Section B's derived vectors, recomputed; each asserted against PROVIDERS.md's value."""
    zoom_body = '{"event":"meeting.started","event_ts":1700000000000,"payload":{}}'
    zoom = mac(hashlib.sha256, "zoom_secret_token", f"v0:1700000000:{zoom_body}").hexdigest()
    assert zoom == "44c480522168b1ad488a8a0cf7d3f3f2e3af46dd40631530280a09946f14b213"
    typeform_body = '{"event_id":"01ABC","event_type":"form_response"}'
    typeform = base64.b64encode(mac(hashlib.sha256, "typeform_secret", typeform_body).digest()).decode()
    assert typeform == "avoM/oP7xoyOktm7gKBSCvy0i7ltp/sf6guWr8qLwwA="
    lemon_body = '{"meta":{"event_name":"order_created"}}'
    lemon = mac(hashlib.sha256, "lemon_secret", lemon_body).hexdigest()
    assert lemon == "0f3d9bfed675915e39487eb1e4e10dd77c3ee9d6cd5f1daee7ace283f29cac2b"
    linear_body = '{"action":"create","type":"Issue","webhookTimestamp":1700000000000}'
    linear = mac(hashlib.sha256, "linear_secret", linear_body).hexdigest()
    assert linear == "1b912ae7b8aa915f5c7f2a82ad16048ba94da42871fbabdffbdc6cf9e9ff2320"
    intercom_body = '{"type":"notification_event","id":"notif_1","topic":"ping"}'
    intercom = mac(hashlib.sha1, "intercom_client_secret", intercom_body).hexdigest()
    assert intercom == "fbec98ddd75e9d6d7345ee09807cc23fe24bf2f8"
    ts, token = "1770920772", "e0b5477167110d68991efc6b9f89f0a11066af27834600e123"
    mailgun = mac(hashlib.sha256, "key-secret-example", ts + token).hexdigest()
    assert mailgun == "6fe69daded99073af059d9c26a4966cd935a57dc565e7283381f204c6688a329"
    mailgun_body = ('{"signature":{"timestamp":"%s","token":"%s","signature":"%s"},'
                    '"event-data":{"event":"delivered","id":"ev-1"}}' % (ts, token, mailgun))
    twilio_json = '{"property": "value", "boolean": true}'
    twilio_hash = hashlib.sha256(twilio_json.encode()).hexdigest()
    assert twilio_hash == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    twilio_json_sig = base64.b64encode(
        mac(hashlib.sha1, "12345", f"{TWILIO_URL}&bodySHA256={twilio_hash}").digest()).decode()
    gitlab_body = '{"object_kind":"push"}'
    return {
        "zoom": request("zoom", 1700000000, [("x-zm-signature", f"v0={zoom}"),
                                             ("x-zm-request-timestamp", "1700000000")], zoom_body),
        "typeform": request("typeform", 0, [("typeform-signature", f"sha256={typeform}")], typeform_body),
        "lemon_squeezy": request("lemon_squeezy", 0, [("x-signature", lemon),
                                                      ("x-event-name", "order_created")], lemon_body),
        "linear": request("linear", 1700000000, [("linear-signature", linear), ("linear-delivery", "d-1"),
                                                 ("linear-event", "Issue")], linear_body),
        "intercom": request("intercom", 0, [("x-hub-signature", f"sha1={intercom}")], intercom_body),
        "mailgun": request("mailgun", int(ts), [("content-type", "application/json")], mailgun_body),
        "twilio_json": request("twilio", 0, [("x-twilio-signature", twilio_json_sig),
                                             ("content-type", "application/json")], twilio_json,
                               uri=f"/myapp.php?foo=1&bar=2&bodySHA256={twilio_hash}"),
        "gitlab": request("gitlab", 0, [("x-gitlab-token", "gitlab-token"), ("idempotency-key", "k-1"),
                                        ("x-gitlab-event", "Push Hook")], gitlab_body),
        # Discord, derived from RFC 8032's TEST 1 key (Ed25519 is deterministic).
        "discord": request("discord", 1700000000, [
            ("x-signature-ed25519", "1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228"
                                    "ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f"),
            ("x-signature-timestamp", "1700000000")], '{"type":1}'),
    }


def requests():
    seeds = {
        "stripe_a3": request("stripe", 1533204720, [("stripe-signature", STRIPE_HEADER),
                                                    ("content-type", "application/json")], STRIPE_BODY),
        "github_a1": request("github", 0, [
            ("x-hub-signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"), ("x-github-event", "push")],
            "Hello, World!"),
        "github_sha1_a1": request("github-sha1", 0, [
            ("x-hub-signature", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"),
            ("x-github-delivery", "d-1")], "Hello, World!"),
        "shopify_a6": request("shopify", 0, [
            ("x-shopify-hmac-sha256", "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
            ("x-shopify-webhook-id", "w-1"), ("x-shopify-topic", "orders/create"),
            ("x-shopify-triggered-at", "2023-11-14T20:43:20.5Z")], '{"foo": "bar"}'),
        "slack_a4": request("slack", 1531420618, [
            ("x-slack-signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
            ("x-slack-request-timestamp", "1531420618"), ("x-slack-retry-num", "1"),
            ("content-type", "application/x-www-form-urlencoded")], SLACK_BODY),
        "standard_webhooks_a5": request("standard_webhooks", 1649367553, [
            ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"), ("webhook-timestamp", "1649367553"),
            ("webhook-signature", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")],
            '{"email":"test@example.com","username":"test_user"}'),
        "svix_a5": request("svix", 1649367553, [
            ("svix-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"), ("svix-timestamp", "1649367553"),
            ("svix-signature", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")],
            '{"email":"test@example.com","username":"test_user"}'),
        "gitlab_signed_a5": request("gitlab_signed", 1614265330, [
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"), ("webhook-timestamp", "1614265330"),
            ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            ("idempotency-key", "msg_p5jXN8AQM9LWM0D4loKWxJek"), ("x-gitlab-event", "Push Hook")],
            '{"test": 2432232314}'),
        "twilio_a7": request("twilio", 0, [
            ("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            ("content-type", "application/x-www-form-urlencoded"), ("i-twilio-idempotency-token", "t-1")],
            TWILIO_BODY, uri="/myapp.php?foo=1&bar=2"),
        "square_a8": request("square", 0, [
            ("x-square-hmacsha256-signature", "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="),
            ("square-retry-number", "2"), ("square-initial-delivery-timestamp", "2022-07-13T20:30:59Z")],
            SQUARE_BODY),
        "paddle_a9": request("paddle", 1696195954, [
            ("paddle-signature", "ts=1696195954;h1=dummy;"
                                 "h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02")],
            "hello-world"),
        "razorpay_a10": request("razorpay", 0, [
            ("x-razorpay-signature", "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9"),
            ("x-razorpay-event-id", "e-1")], RAZORPAY_BODY),
        "sendgrid_a11": request("sendgrid", 1600112502, [
            ("x-twilio-email-event-webhook-signature",
             "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="),
            ("x-twilio-email-event-webhook-timestamp", "1600112502")], SENDGRID_BODY),
    }
    seeds.update(derived())
    return seeds


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    corpora = {
        "verify": requests(),
        "request": requests(),
        "peek": {
            "stripe_a3": b"/id;/type;/created;/data/object/id\n" + STRIPE_BODY.encode(),
            "razorpay_a10": b"/event;/payload/payment/entity/id;/created_at;/contains/0\n" + RAZORPAY_BODY.encode(),
            "escapes": b'/id;/\\u0074ype;/a/b/1/c;\n{"id":"\\u00e9v\\"t","type":-0,"a":{"b":1e5,"b":[1,{"c":2}]}}',
        },
        "payload": {
            "stripe_a3": b"json depth:32 max:100000 require:/data/object/id notnull:/data/object/email "
                         b"require:/request/idempotency_key notnull:/livemode\n" + STRIPE_BODY.encode(),
            "razorpay_a10": b"require:/payload/payment/entity/id notnull:/payload/payment/entity/bank "
                            b"require:/contains/0 require:/contains/01 require:/a~1b~0\n" + RAZORPAY_BODY.encode(),
        },
        "twilio": {
            "a7_form": f"{TWILIO_URL}\n{TWILIO_BODY}".encode(),
            "a7_port_fragment": f"https://u:p@mycompany.com:443/myapp.php?foo=1#rt=5000\n{TWILIO_BODY}".encode(),
            "a7_json": f"{TWILIO_URL}\n{{\"property\": \"value\", \"boolean\": true}}".encode(),
            "plus_percent": b"http://[::1]:8080/sms\nBody=Hello+world+%2B1+100%25+caf%C3%A9&From=%2B14158675309&&x",
        },
        "retry_after": {"seconds": b"120", "spaces": b" 0 ", "http_date": b"Wed, 21 Oct 2015 07:28:00 GMT",
                        "word": b"soon", "no_break_space": b" 2\xc2\xa0"},
        "body": {},
    }
    for target, seeds in corpora.items():
        folder = ROOT / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        if not seeds:
            (folder / ".keep").touch()  # an empty corpus: the target is structure-aware
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
