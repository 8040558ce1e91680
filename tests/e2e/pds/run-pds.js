// A real PDS (@atproto/pds) and an in-memory PLC directory (@did-plc/server) on loopback, started the way
// the official image starts the PDS: readEnv → envToCfg → envToSecrets → PDS.create → start.
//
//   node run-pds.js DATA_DIR
//
// Prints one JSON line when both answer ({"pds_port", "plc_port", "admin_password", "data_dir",
// "blobstore", "env_file"}), then runs until SIGTERM/SIGINT or until stdin closes (so a dead test runner never
// leaves a PDS behind).
'use strict'

const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')

const plc = require('@did-plc/server')
const pds = require('@atproto/pds')

const LOOPBACK = '127.0.0.1'

// Both servers call `app.listen(port)`, which binds every interface. Wrap (not replace) it so the
// listeners bind loopback only: xrpc-server has already wrapped `listen` to attach its websocket
// upgrade handler, and that wrapper must keep running.
function bindLoopback(app) {
  const listen = app.listen
  app.listen = (port) => listen.call(app, port, LOOPBACK)
}

// The PDS derives its public URL (http://localhost:PORT) from its port, so the port is fixed before
// start-up: ask the kernel for a free one.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, LOOPBACK, () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

async function tlsCheck(server, req, res) {
  const domain = req.query.domain
  if (!domain || typeof domain !== 'string') {
    return res.status(400).json({ error: 'InvalidRequest', message: 'bad or missing domain query param' })
  }
  if (domain === server.ctx.cfg.service.hostname) return res.json({ success: true })
  const hosted = server.ctx.cfg.identity.serviceHandleDomains.some((d) => domain.endsWith(d))
  if (!hosted) {
    return res.status(400).json({ error: 'InvalidRequest', message: 'handles are not provided on this domain' })
  }
  const account = await server.ctx.accountManager.getAccount(domain).catch(() => null)
  if (!account) return res.status(404).json({ error: 'NotFound', message: 'handle not found for this domain' })
  return res.json({ success: true })
}

async function main() {
  const dataDir = path.resolve(process.argv[2] || fs.mkdtempSync('pds-'))
  const blobstore = path.join(dataDir, 'blocks')
  fs.mkdirSync(blobstore, { recursive: true })

  const plcServer = plc.PlcServer.create({ db: plc.Database.mock(), port: 0 })
  bindLoopback(plcServer.app)
  const plcHttp = await plcServer.start()
  const plcPort = plcHttp.address().port

  const pdsPort = await freePort()
  const adminPassword = crypto.randomBytes(16).toString('hex')
  Object.assign(process.env, {
    PDS_HOSTNAME: 'localhost',
    PDS_DEV_MODE: 'true',
    PDS_PORT: String(pdsPort),
    PDS_JWT_SECRET: crypto.randomBytes(16).toString('hex'),
    PDS_ADMIN_PASSWORD: adminPassword,
    PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: crypto.randomBytes(32).toString('hex'),
    PDS_DATA_DIRECTORY: dataDir,
    PDS_BLOBSTORE_DISK_LOCATION: blobstore,
    // Temporary uploads live inside the blob store (`<blocks>/tempt` by default); said explicitly so the
    // tests' "nothing reached the disk" check covers them.
    PDS_BLOBSTORE_DISK_TMP_LOCATION: path.join(blobstore, 'tempt'),
    PDS_BLOB_UPLOAD_LIMIT: '104857600',
    PDS_DID_PLC_URL: `http://${LOOPBACK}:${plcPort}`,
    PDS_INVITE_REQUIRED: 'false',
    PDS_BSKY_APP_VIEW_URL: 'http://127.0.0.1:9',
    PDS_BSKY_APP_VIEW_DID: 'did:web:api.bsky.app',
    PDS_REPORT_SERVICE_URL: 'http://127.0.0.1:9',
    PDS_REPORT_SERVICE_DID: 'did:plc:ar7c4by46qjdydhdevvrndac',
    PDS_CRAWLERS: '',
  })

  // The PDS's env file as the official installer writes it (/pds/pds.env): what an operator points the
  // gate's GATE_PDS_ENV_FILE at.
  const envFile = path.join(dataDir, 'pds.env')
  const keys = ['PDS_HOSTNAME', 'PDS_PORT', 'PDS_JWT_SECRET', 'PDS_ADMIN_PASSWORD', 'PDS_DATA_DIRECTORY']
  fs.writeFileSync(envFile, keys.map((k) => `${k}=${process.env[k]}\n`).join(''), { mode: 0o600 })

  const env = pds.readEnv()
  env.version ||= require('@atproto/pds/package.json').version
  const cfg = pds.envToCfg(env)
  const secrets = pds.envToSecrets(env)
  const server = await pds.PDS.create(cfg, secrets)
  bindLoopback(server.app)
  await server.start()
  // The official image (bluesky-social/pds service/index.js) adds this route after start-up: Caddy's
  // on-demand TLS asks it whether a certificate may be issued for a name.
  server.app.get('/tls-check', (req, res) => tlsCheck(server, req, res))

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await server.destroy().catch(() => {})
    await plcServer.destroy().catch(() => {})
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.on('error', stop)
  process.stdin.resume()

  process.stdout.write(
    JSON.stringify({
      pds_port: pdsPort,
      plc_port: plcPort,
      admin_password: adminPassword,
      data_dir: dataDir,
      blobstore,
      env_file: envFile,
    }) + '\n',
  )
}

main().catch((err) => {
  process.stderr.write(`run-pds: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
