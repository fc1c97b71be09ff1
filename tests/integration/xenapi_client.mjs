// xenapi_client.mjs - drive poold with Xen Orchestra's `xen-api` npm client.
//
// Run by test_xenapi_npm.py from a copy placed next to the node_modules that
// holds xen-api (tests/integration/.npm/), so that the bare import resolves:
//
//   node xenapi_client.mjs PORT PASSWORD WATCHED_VM_REF NEW_NAME
//
// Protocol with the test: one JSON object per stdout line.
//   {"connected": ...}           after connect()
//   {"counts": {...}}            objects per type once objectsFetched resolved
//   {"pool": ..., "template": ...}
//   {"READY": true}              the test now renames WATCHED_VM_REF to NEW_NAME
//   {"update": {...}}            the rename as seen through the event loop
//   {"clone": ref}               result of callAsync('VM.clone', template, 'npm-clone')
//   {"tasks_left": [...]}        Async.VM.clone tasks still cached (the library destroys its task)
//   {"done": true}               after disconnect(); exit code 0
// Any failure prints {"error": "..."} and exits 1; a global timer exits 2.
import { createClient } from 'xen-api'

const [port, password, watchedRef, newName] = process.argv.slice(2)
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
  const counts = {}
  for (const obj of Object.values(xapi.objects.all)) counts[obj.$type] = (counts[obj.$type] ?? 0) + 1
  out({ counts })

  const all = Object.values(xapi.objects.all)
  const pool = all.find(o => o.$type === 'pool')
  if (pool === undefined) throw new Error('no pool object in the cache')
  const template = all.find(o => o.$type === 'VM' && o.name_label === 'Generic VM' && o.is_a_template === true)
  if (template === undefined) throw new Error('no "Generic VM" template in the cache')
  const watched = xapi.getObjectByRef(watchedRef, undefined)
  if (watched === undefined) throw new Error(`VM ${watchedRef} is not in the cache`)
  out({ pool: pool.$ref, pool_name_label: pool.name_label, template: template.$ref, watched: watched.$ref })

  // the rename done by the test must arrive through event.from
  const seen = new Promise(resolve => {
    const onUpdate = objects => {
      for (const obj of Object.values(objects)) {
        if (obj !== undefined && obj.$ref === watchedRef && obj.name_label === newName) {
          xapi.objects.removeListener('update', onUpdate)
          resolve(obj)
        }
      }
    }
    xapi.objects.on('update', onUpdate)
  })
  out({ READY: true })
  const updated = await within(seen, 20e3, `'update' event for ${watchedRef}`)
  out({ update: { ref: updated.$ref, type: updated.$type, name_label: updated.name_label, uuid: updated.uuid } })

  // Async.VM.clone: task ref, task completion seen through events, XML-RPC
  // result parsed, then task.destroy by the library
  const cloneRef = await within(xapi.callAsync('VM.clone', template.$ref, 'npm-clone'), 20e3, 'callAsync VM.clone')
  out({ clone: cloneRef })

  // the library destroys the task once settled: wait until its removal comes
  // back through the event loop (a quick disconnect would race that call)
  const cloneTasks = () =>
    Object.values(xapi.objects.all).filter(o => o.$type === 'task' && o.name_label === 'Async.VM.clone')
  const until = Date.now() + 15e3
  while (cloneTasks().length > 0 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
  out({ tasks_left: cloneTasks().map(t => ({ ref: t.$ref, status: t.status })) })
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
