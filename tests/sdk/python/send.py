"""Sends identify, track and page calls to a running `cairn serve` with Segment's own
Python SDK (`segment-analytics-python`), the way an application would.

Usage: send.py HOST WRITE_KEY USER_ID
Exits 1 when the SDK reports an error from the daemon.
"""

import sys

from segment.analytics import Client


def main() -> int:
    host, write_key, user_id = sys.argv[1:4]
    errors = []
    client = Client(
        write_key,
        host=host,
        on_error=lambda error, batch: errors.append(f"{error} ({len(batch)} messages)"),
        max_retries=0,
    )
    client.identify(
        user_id,
        {
            "email": f"{user_id}@example.com",
            "first_name": "Ana",
            "consents": ["email_marketing"],
        },
    )
    client.track(
        user_id,
        "Cart Updated",
        {
            "cart_id": "py-cart-1",
            "value": "80.00 EUR",
            "url": "https://nordkit.example/cart/py-cart-1",
            "items": [{"sku": "TENT-2P", "name": "Fjell 2 tent", "price": 80}],
            "currency": "EUR",
        },
    )
    client.page(
        user_id,
        category="gear",
        name="Pricing",
        properties={"url": "https://nordkit.example/pricing?ref=py"},
    )
    client.flush()
    client.shutdown()
    if errors:
        print("the daemon refused messages: " + "; ".join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
