// xenapi_rpu.mjs - Xen Orchestra's `xen-api` npm client connected through a
// whole rolling pool upgrade, run by test_xenapi_npm_rpu.py from a copy
// placed next to tests/integration/.npm/node_modules:
//
//   node xenapi_rpu.mjs PORT PASSWORD TIMEOUT_MS COMMAND
//
// It connects, then calls Async.pool.rolling_upgrade({command}) through
// callAsync, which follows the task through the client's own event loop;
// the master's upgrade restarts poold meanwhile, and the client must carry
// on by itself. Protocol with the test: one JSON object per stdout line.
//   {"connected": {...}}   the hosts' product versions from the cache
//   {"done": {...}}        the task's end as the client saw it: what it saw of
//                          pool.other_config:rolling_upgrade_in_progress,
//                          the versions from its cache, event errors and
//                          successes after the first error; exit code 0
// Any failure prints {"error": "..."} and exits 1; a global timer exits 2.
import { createClient } from 'xen-api'

const [port, password, timeoutMs, command] = process.argv.slice(2)
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

setTimeout(() => {
  out({ error: `global timeout after ${timeoutMs} ms` })
  process.exit(2)
}, Number(timeoutMs)).unref()

const xapi = createClient({
  url: `https://127.0.0.1:${port}`,
  allowUnauthorized: true,
  auth: { user: 'root', password },
  transport: 'json-rpc',
  // after an event call fails (poold's restart cuts the long poll) the
  // client waits eventPollDelay before its next one: 60 s by default, longer
  // than the rest of this run's mixed phase; 1 s lets it see the mode
  eventPollDelay: 1000,
})
const versions = () =>
  Object.fromEntries(
    Object.values(xapi.objects.all)
      .filter(o => o.$type === 'host')
      .map(h => [h.name_label, h.software_version.product_version])
  )

let modeOn = false
let modeOff = false
let errors = 0
let okAfterError = 0
xapi.on('eventFetchingError', () => errors++)
xapi.on('eventFetchingSuccess', () => errors > 0 && okAfterError++)
const onPool = objects => {
  for (const o of Object.values(objects)) {
    if (o === undefined || o.$type !== 'pool') continue
    const on = o.other_config.rolling_upgrade_in_progress === 'true'
    if (on) modeOn = true
    else if (modeOn) modeOff = true
  }
}
xapi.objects.on('add', onPool)
xapi.objects.on('update', onPool)

let failed = false
try {
  await xapi.connect()
  await xapi.objectsFetched
  out({ connected: { versions: versions() } })
  const result = await xapi.callAsync('pool.rolling_upgrade', { command })
  // the last updates may still be on their way through the event loop
  for (let i = 0; i < 50 && !(modeOff && Object.values(versions()).every(v => v !== '0.1.0')); i++)
    await new Promise(resolve => setTimeout(resolve, 200))
  out({ done: { result_is_text: typeof result === 'string', mode_on: modeOn, mode_off: modeOff, versions: versions(), errors, ok_after_error: okAfterError } })
} catch (error) {
  failed = true
  out({ error: String(error?.stack ?? error), code: error?.code, params: error?.params })
} finally {
  try {
    await xapi.disconnect()
  } catch (error) {
    out({ error: 'disconnect: ' + String(error) })
    failed = true
  }
}
process.exit(failed ? 1 : 0)
