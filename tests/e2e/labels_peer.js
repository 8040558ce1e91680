// A real atproto peer reading the gate's labeler: queryLabels through the TypeScript @atproto/api client,
// subscribeLabels through a plain websocket whose frames are decoded with @atproto/common's DAG-CBOR
// (cborDecodeMulti), and every label's signature checked with @atproto/crypto over @atproto/common's
// encoding of the label without `sig` — nothing of the gate's own code.
//
//   NODE_PATH=tests/e2e/.pds/node_modules node labels_peer.js GATE_URL DID_KEY STREAM_COUNT [CURSOR]
//
// Prints "subscribed" once the websocket is open, then one JSON line when STREAM_COUNT #labels frames
// have arrived: {"query": [...], "stream": [...], "future": {...}} with each label's `valid` signature
// verdict. Exits 1 on a timeout.
'use strict'

const { AtpAgent } = require('@atproto/api')
const { cborEncode, cborDecodeMulti } = require('@atproto/common')
const { verifySignature } = require('@atproto/crypto')
const WebSocket = require('ws')

const [gateUrl, didKey, streamCount, cursor] = process.argv.slice(2)
const wsBase = gateUrl.replace(/^http/, 'ws') + '/xrpc/com.atproto.label.subscribeLabels'

function sigBytes(sig) {
  if (sig instanceof Uint8Array) return sig
  if (sig && typeof sig.$bytes === 'string') return new Uint8Array(Buffer.from(sig.$bytes, 'base64'))
  throw new Error(`label without a usable sig: ${JSON.stringify(sig)}`)
}

async function checked(label) {
  const { sig, ...unsigned } = label
  const bytes = sigBytes(sig)
  const valid = await verifySignature(didKey, cborEncode(unsigned), bytes)
  return { ...unsigned, sigLength: bytes.length, valid }
}

function frames(url, wanted, onOpen) {
  return new Promise((resolve, reject) => {
    const got = []
    const ws = new WebSocket(url)
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length} of ${wanted} frames`)), 30000)
    ws.on('open', onOpen)
    ws.on('message', (data) => {
      const [header, body] = cborDecodeMulti(new Uint8Array(data))
      got.push({ header, body })
      if (header.op === -1 || got.length >= wanted) {
        clearTimeout(timer)
        ws.close()
        resolve(got)
      }
    })
    ws.on('error', reject)
  })
}

async function main() {
  const agent = new AtpAgent({ service: gateUrl })
  const res = await agent.com.atproto.label.queryLabels({ uriPatterns: ['*'], limit: 250 })
  const query = await Promise.all(res.data.labels.map(checked))

  const q = cursor === undefined ? '' : `?cursor=${cursor}`
  const streamed = await frames(wsBase + q, Number(streamCount), () => console.log('subscribed'))
  const stream = []
  for (const { header, body } of streamed) {
    if (header.op !== 1 || header.t !== '#labels') throw new Error(`unexpected frame ${JSON.stringify(header)}`)
    for (const label of body.labels) stream.push({ seq: body.seq, ...(await checked(label)) })
  }

  // A cursor past the head: the stream's one error frame, then the socket closes.
  const [future] = await frames(`${wsBase}?cursor=999999999`, 1, () => {})
  console.log(JSON.stringify({ query, queryCursor: res.data.cursor, stream, future }))
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err && err.stack ? err.stack : String(err))
    process.exit(1)
  },
)
