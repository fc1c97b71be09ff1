// xenapi_master.mjs - Xen Orchestra's `xen-api` npm client through a master
// failover, run by test_xenapi_npm_master.py from a copy placed next to
// tests/integration/.npm/node_modules:
//
//   node xenapi_master.mjs PORT PASSWORD MASTER_ADDRESS PROTECTED_VM_REF
//
// It connects to the master, learns the pool's hosts from its cache, and
// once the master's host is gone it does what a client of a pool must: it
// connects to the other hosts it knows, one after the other, until one lets
// it in (a standby answers HOST_IS_SLAVE with the new master's address, which
// the client follows); then its event loop must show the protected VM running
// again on a live host.
// Protocol with the test: one JSON object per stdout line.
//   {"READY": {...}}         connected to the master, the hosts' addresses known
//   {"lost": "..."}          the old master stopped answering (an event or call failed)
//   {"reconnected": {...}}   logged in again, through another host, to the new master
//   {"restarted": {...}}     the protected VM Running on another host, through the new event loop
//   {"done": true}           after disconnect(); exit code 0
// Any failure prints {"error": "..."} and exits 1; a global timer exits 2.
import { createClient } from 'xen-api'

const [port, password, masterAddress, vmRef] = process.argv.slice(2)
const TOTAL_MS = Number(process.env.XENAPI_TEST_TIMEOUT_MS ?? 90000)
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

setTimeout(() => {
  out({ error: `global timeout after ${TOTAL_MS} ms` })
  process.exit(2)
}, TOTAL_MS).unref()

const delay = ms => new Promise(resolve => setTimeout(resolve, ms))
const timeout = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error('timeout: ' + what)), ms).unref())
const within = (promise, ms, what) => Promise.race([promise, timeout(ms, what)])

const client = address =>
  createClient({
    url: `https://${address}:${port}`,
    allowUnauthorized: true,
    auth: { user: 'root', password },
    transport: 'json-rpc',
    eventPollDelay: 500,
  })

// The first object of the cache's 'add'/'update' events that pred accepts,
// or one already there.
const watch = (xapi, pred) =>
  new Promise(resolve => {
    const found = Object.values(xapi.objects.all).find(pred)
    if (found !== undefined) return resolve(found)
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
let first = client(masterAddress)
let second
try {
  await within(first.connect(), 15e3, 'connect')
  await within(first.objectsFetched, 30e3, 'objectsFetched')
  const hosts = Object.values(first.objects.all).filter(o => o.$type === 'host')
  const oldMaster = first.pool.master
  const others = hosts.filter(h => h.$ref !== oldMaster).map(h => h.address)
  const lost = new Promise(resolve => first.once('eventFetchingError', e => resolve(String(e?.code ?? e))))
  out({ READY: { hosts: hosts.length, others, master: oldMaster } })
  out({ lost: await within(lost, 60e3, 'the old master failing') })
  await first.disconnect().catch(() => {})
  first = undefined
  // another host of the pool, in turn, until the new master lets us in
  const deadline = Date.now() + 60e3
  for (let k = 0; second === undefined; k++) {
    if (Date.now() > deadline) throw new Error('no host of ' + others.join(',') + ' let the client in')
    const c = client(others[k % others.length])
    try {
      await within(c.connect(), 10e3, 'connect')
      second = c
    } catch (error) {
      await c.disconnect().catch(() => {})
      await delay(500)
    }
  }
  await within(second.objectsFetched, 30e3, 'objectsFetched after the failover')
  const newMaster = second.pool.master
  out({ reconnected: { url: second._url.hostname, master: newMaster, old_master: oldMaster } })
  const vm = await within(
    watch(second, o => o.$ref === vmRef && o.power_state === 'Running' && o.resident_on !== oldMaster && o.resident_on !== 'OpaqueRef:NULL'),
    40e3,
    'the protected VM running again'
  )
  out({ restarted: { ref: vm.$ref, resident_on: vm.resident_on, host_name: vm.$resident_on?.name_label ?? null } })
} catch (error) {
  failed = true
  out({ error: String(error?.stack ?? error), code: error?.code, params: error?.params })
} finally {
  for (const x of [first, second]) {
    if (x === undefined) continue
    try {
      await within(x.disconnect(), 10e3, 'disconnect')
    } catch (error) {
      out({ error: 'disconnect: ' + String(error) })
      failed = true
    }
  }
}
if (!failed) out({ done: true })
process.exit(failed ? 1 : 0)
