// xenapi_ha.mjs - Xen Orchestra's `xen-api` npm client watching an HA
// failover, run by test_xenapi_npm_ha.py from a copy placed next to
// tests/integration/.npm/node_modules:
//
//   node xenapi_ha.mjs PORT PASSWORD PROTECTED_VM_REF FAILING_HOST_REF
//
// Protocol with the test: one JSON object per stdout line.
//   {"enabled": {...}}     after pool.enable_ha (timeout 5 s) through the client
//   {"READY": true}        the test now kills the failing host
//   {"message": {...}}     the HA_HOST_FAILED message, as it arrived through the event loop
//   {"restarted": {...}}   the protected VM Running on another host, through the event loop
//   {"done": true}         after disconnect(); exit code 0
// Any failure prints {"error": "..."} and exits 1; a global timer exits 2.
import { createClient } from 'xen-api'

const [port, password, vmRef, failingRef] = process.argv.slice(2)
const TOTAL_MS = Number(process.env.XENAPI_TEST_TIMEOUT_MS ?? 60000)
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

setTimeout(() => {
  out({ error: `global timeout after ${TOTAL_MS} ms` })
  process.exit(2)
}, TOTAL_MS).unref()

const timeout = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error('timeout: ' + what)), ms).unref())
const within = (promise, ms, what) => Promise.race([promise, timeout(ms, what)])

const xapi = createClient({
  url: `https://127.0.0.1:${port}`,
  allowUnauthorized: true,
  auth: { user: 'root', password },
  transport: 'json-rpc',
})

// The first object of the cache's 'add'/'update' events that pred accepts.
const watch = pred =>
  new Promise(resolve => {
    const on = objects => {
      for (const obj of Object.values(objects)) {
        if (obj !== undefined && pred(obj)) {
          xapi.objects.removeListener('add', on)
          xapi.objects.removeListener('update', on)
          resolve(obj)
          return
        }
      }
    }
    xapi.objects.on('add', on)
    xapi.objects.on('update', on)
  })

let failed = false
try {
  await within(xapi.connect(), 15e3, 'connect')
  await within(xapi.objectsFetched, 30e3, 'objectsFetched')
  await within(xapi.callAsync('pool.enable_ha', [], { timeout: '5' }), 40e3, 'Async.pool.enable_ha')
  const pool = xapi.pool
  out({ enabled: { ha_enabled: await xapi.call('pool.get_ha_enabled', pool.$ref), pool: pool.$ref } })
  const message = watch(o => o.$type === 'message' && o.name === 'HA_HOST_FAILED')
  const restarted = watch(
    o => o.$ref === vmRef && o.power_state === 'Running' && o.resident_on !== failingRef && o.resident_on !== 'OpaqueRef:NULL'
  )
  out({ READY: true })
  const m = await within(message, 30e3, 'the HA_HOST_FAILED message')
  out({ message: { name: m.name, cls: m.cls, obj_uuid: m.obj_uuid, body: m.body } })
  const vm = await within(restarted, 30e3, 'the protected VM running again')
  out({ restarted: { ref: vm.$ref, resident_on: vm.resident_on, host_name: vm.$resident_on?.name_label ?? null } })
  await within(xapi.call('pool.disable_ha'), 20e3, 'pool.disable_ha')
} catch (error) {
  failed = true
  out({ error: String(error?.stack ?? error), code: error?.code, params: error?.params })
} finally {
  try {
    await within(xapi.disconnect(), 10e3, 'disconnect')
  } catch (error) {
    out({ error: 'disconnect: ' + String(error) })
    failed = true
  }
}
if (!failed) out({ done: true })
process.exit(failed ? 1 : 0)
