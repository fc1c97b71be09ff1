// xenapi_pool.mjs - Xen Orchestra's `xen-api` npm client against a pool of
// several hosts (a devpool), run by test_xenapi_npm_pool.py from a copy placed
// next to tests/integration/.npm/node_modules (so the bare import resolves):
//
//   node xenapi_pool.mjs PORT PASSWORD WATCHED_VM_REF EVACUATED_HOST_REF
//
// Protocol with the test: one JSON object per stdout line.
//   {"connected": ...}               after connect()
//   {"counts": {...}}                objects per type once objectsFetched resolved
//   {"hosts": [...]}                 every host: ref, uuid, name_label, address, live
//   {"running": [...]}               every running VM: ref, name_label, resident_on, domid
//   {"READY": true}                  the test now starts WATCHED_VM_REF
//   {"update": {...}}                that VM, Running, as seen through the event loop
//   {"evacuated": {...}}             after Xen Orchestra's host maintenance: host.disable,
//                                    Async.host.evacuate(host, NULL, 2) followed to its end
//                                    through the client's task watching, host.enable
//   {"done": true}                   after disconnect(); exit code 0
// Any failure prints {"error": "..."} and exits 1; a global timer exits 2.
import { createClient } from 'xen-api'

const [port, password, watchedRef, evacRef] = process.argv.slice(2)
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
  transport: 'json-rpc', // no silent fallback to XML-RPC
})

let failed = false
try {
  await within(xapi.connect(), 15e3, 'connect')
  out({ connected: true, status: xapi.status, pool: xapi.pool?.$ref ?? null })

  await within(xapi.objectsFetched, 30e3, 'objectsFetched')
  const all = () => Object.values(xapi.objects.all)
  const counts = {}
  for (const obj of all()) counts[obj.$type] = (counts[obj.$type] ?? 0) + 1
  out({ counts })

  // links are followed through the cache, as Xen Orchestra does ($metrics)
  out({
    hosts: all()
      .filter(o => o.$type === 'host')
      .map(h => ({ ref: h.$ref, uuid: h.uuid, name_label: h.name_label, address: h.address, live: h.$metrics?.live ?? null })),
  })
  out({
    running: all()
      .filter(o => o.$type === 'VM' && !o.is_a_template && !o.is_control_domain && o.power_state === 'Running')
      .map(v => ({ ref: v.$ref, name_label: v.name_label, resident_on: v.resident_on, domid: v.domid })),
  })
  if (xapi.getObjectByRef(watchedRef, undefined) === undefined) throw new Error(`VM ${watchedRef} is not in the cache`)

  // the start done by the test must arrive through event.from
  const seen = new Promise(resolve => {
    const onUpdate = objects => {
      for (const obj of Object.values(objects)) {
        if (obj !== undefined && obj.$ref === watchedRef && obj.power_state === 'Running') {
          xapi.objects.removeListener('update', onUpdate)
          resolve(obj)
        }
      }
    }
    xapi.objects.on('update', onUpdate)
  })
  out({ READY: true })
  const vm = await within(seen, 20e3, `'update' of ${watchedRef} to Running`)
  out({
    update: {
      ref: vm.$ref,
      type: vm.$type,
      power_state: vm.power_state,
      resident_on: vm.resident_on,
      host_name: vm.$resident_on?.name_label ?? null,
      domid: vm.domid,
    },
  })
  // what Xen Orchestra does for maintenance mode: disable, evacuate (3 arguments), enable
  await within(xapi.call('host.disable', evacRef), 10e3, 'host.disable')
  const t0 = Date.now()
  const result = await within(xapi.callAsync('host.evacuate', evacRef, 'OpaqueRef:NULL', 2), 60e3, 'Async.host.evacuate')
  await within(xapi.call('host.enable', evacRef), 10e3, 'host.enable')
  out({ evacuated: { result: result ?? null, ms: Date.now() - t0, enabled: await xapi.call('host.get_enabled', evacRef) } })
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
process.exit(failed ? 1 : 0) // a pending event.from would keep node alive
