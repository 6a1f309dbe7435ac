// Sends identify, track and page calls to a running `cairn serve` with Segment's own
// Node SDK (`@segment/analytics-node`), the way an application would.
//
// Usage: node send.mjs HOST WRITE_KEY USER_ID
// Exits 1 when the SDK reports an error from the daemon.

import { Analytics } from '@segment/analytics-node'

const [host, writeKey, userId] = process.argv.slice(2)
const errors = []
const analytics = new Analytics({ writeKey, host, maxRetries: 0, flushInterval: 100 })
analytics.on('error', (error) => errors.push(String(error?.reason ?? error?.message ?? error)))

analytics.identify({
  userId,
  traits: { email: `${userId}@example.com`, first_name: 'Noor', consents: ['email_marketing'] },
})
analytics.track({
  userId,
  event: 'Cart Updated',
  properties: {
    cart_id: 'node-cart-1',
    value: '45.50 EUR',
    url: 'https://nordkit.example/cart/node-cart-1',
    items: [{ sku: 'LAMP-H', name: 'Head lamp', price: '45.50 EUR' }],
  },
})
analytics.page({
  userId,
  category: 'gear',
  name: 'Pricing',
  properties: { url: 'https://nordkit.example/pricing?ref=node' },
})
await analytics.closeAndFlush({ timeout: 10000 })
if (errors.length > 0) {
  console.error(`the daemon refused messages: ${errors.join('; ')}`)
  process.exit(1)
}
