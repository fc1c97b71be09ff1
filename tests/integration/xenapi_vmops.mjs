// xenapi_vmops.mjs - Xen Orchestra's `xen-api` npm client doing what XO does
// every day to a VM on a devpool, run by test_xenapi_npm_vmops.py from a copy
// next to tests/integration/.npm/node_modules:
//
//   node xenapi_vmops.mjs PORT PASSWORD SR_UUID HOST_A HOST_B NETWORK
//
// One JSON object per stdout line, in this order:
//   {"created": {vm, vbds, template}}      XO's New VM: VM.clone of the template,
//                                          VM.set_memory_limits, other_config:disks,
//                                          VM.provision, VM.start
//   {"snapshot": {snap, reverted_state}}   VM.snapshot, VM.revert (the VM halted), VM.start
//   {"rebooted": {domid_before, after}}    VM.clean_reboot
//   {"resumed": {suspended, state}}        VM.suspend, VM.resume_on
//   {"hotplug": {vbd, vif}}                VDI.create + VBD.create + VBD.plug, VIF.create + VIF.plug
//   {"migrating": {current, allowed}}      the VM as the client's cache shows it while
//                                          Async.VM.pool_migrate runs
//   {"migrated": {resident_on}}
//   {"done": true}
// Every call goes through Async (callAsync: the task watched through events),
// as XO does. A failure prints {"error": ...} and exits 1.
import { createClient } from 'xen-api'

const [port, password, srUuid, hostA, hostB, network] = process.argv.slice(2)
const TOTAL_MS = Number(process.env.XENAPI_TEST_TIMEOUT_MS ?? 90000)
const MiB = 1024 * 1024
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')
setTimeout(() => {
  out({ error: `global timeout after ${TOTAL_MS} ms` })
  process.exit(2)
}, TOTAL_MS).unref()

const xapi = createClient({
  url: `https://127.0.0.1:${port}`,
  allowUnauthorized: true,
  auth: { user: 'root', password },
  transport: 'json-rpc',
})

// the VM as the client's cache holds it, once pred holds
const cached = (ref, pred, ms = 20e3) =>
  new Promise((resolve, reject) => {
    const now = xapi.getObjectByRef(ref, undefined)
    if (now !== undefined && pred(now)) return resolve(now)
    const t = setTimeout(() => reject(new Error(`cache: ${ref} never matched`)), ms)
    const onUpdate = objects => {
      for (const o of Object.values(objects)) {
        if (o !== undefined && o.$ref === ref && pred(o)) {
          clearTimeout(t)
          xapi.objects.removeListener('update', onUpdate)
          resolve(o)
        }
      }
    }
    xapi.objects.on('update', onUpdate)
  })

let failed = false
try {
  await xapi.connect()
  await xapi.objectsFetched
  const all = () => Object.values(xapi.objects.all)
  const tmpl = all().find(o => o.$type === 'VM' && o.is_a_template && o.name_label === 'Generic VM')

  // New VM, as XO's createVm does it
  const vm = await xapi.callAsync('VM.clone', tmpl.$ref, 'xo-vm')
  // a guest that dirties its memory fast: its migration outlasts the client's event
  // debounce (200 ms), so the cache shows it in flight, as XO would
  await xapi.call('VM.set_memory_limits', vm, 64 * MiB, 512 * MiB, 512 * MiB, 512 * MiB)
  await xapi.call('VM.add_to_other_config', vm, 'sim-dirty-pages-per-s', '60000')
  await xapi.call('VM.add_to_other_config', vm, 'sim-working-set-mib', '400')
  await xapi.call('VM.add_to_other_config', vm, 'disks',
    `<provision><disk device="0" size="${16 * MiB}" sr="${srUuid}" bootable="true" type="system"/></provision>`)
  await xapi.callAsync('VM.provision', vm)
  await xapi.callAsync('VM.start_on', vm, hostA, false, false)
  const running = await cached(vm, o => o.power_state === 'Running')
  out({ created: { vm, vbds: running.VBDs.length, template: running.is_a_template } })

  // snapshot, then revert
  const snap = await xapi.callAsync('VM.snapshot', vm, 'xo-snap')
  await xapi.callAsync('VM.revert', snap)
  const reverted = await cached(vm, o => o.power_state === 'Halted')
  out({ snapshot: { snap, reverted_state: reverted.power_state, parent: reverted.parent } })
  await xapi.callAsync('VM.start_on', vm, hostA, false, false)

  // reboot
  const before = (await cached(vm, o => o.power_state === 'Running')).domid
  await xapi.callAsync('VM.clean_reboot', vm)
  const after = await cached(vm, o => o.domid !== before && o.power_state === 'Running')
  out({ rebooted: { domid_before: before, after: after.domid } })

  // suspend and resume
  await xapi.callAsync('VM.suspend', vm)
  const suspended = await cached(vm, o => o.power_state === 'Suspended')
  await xapi.callAsync('VM.resume_on', vm, hostA, false, false)
  const resumed = await cached(vm, o => o.power_state === 'Running')
  out({ resumed: { suspended: suspended.power_state, state: resumed.power_state, image: suspended.suspend_VDI } })

  // a disk and a NIC, hot
  const sr = all().find(o => o.$type === 'SR' && o.uuid === srUuid).$ref
  const vdi = await xapi.callAsync('VDI.create', { name_label: 'xo-disk', SR: sr, virtual_size: 4 * MiB, type: 'user',
    sharable: false, read_only: false, other_config: {} })
  const devs = await xapi.call('VM.get_allowed_VBD_devices', vm)
  const vbd = await xapi.callAsync('VBD.create', { VM: vm, VDI: vdi, userdevice: devs[0], mode: 'RW', type: 'Disk',
    bootable: false, empty: false, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} })
  await xapi.callAsync('VBD.plug', vbd)
  const vifDevs = await xapi.call('VM.get_allowed_VIF_devices', vm)
  const vif = await xapi.callAsync('VIF.create', { VM: vm, network, device: vifDevs[0], MAC: '', MTU: 1500,
    other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} })
  await xapi.callAsync('VIF.plug', vif)
  const pv = await cached(vbd, o => o.currently_attached)
  const pf = await cached(vif, o => o.currently_attached)
  out({ hotplug: { vbd: { attached: pv.currently_attached, device: pv.device }, vif: { attached: pf.currently_attached } } })

  // what XO shows while the VM migrates
  const task = xapi.callAsync('VM.pool_migrate', vm, hostB, {})
  const busy = await cached(vm, o => Object.values(o.current_operations).includes('pool_migrate'))
  out({ migrating: { current: Object.values(busy.current_operations), allowed: busy.allowed_operations } })
  await task
  const moved = await cached(vm, o => o.resident_on === hostB && Object.keys(o.current_operations).length === 0)
  out({ migrated: { resident_on: moved.resident_on, allowed: moved.allowed_operations } })
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
if (!failed) out({ done: true })
process.exit(failed ? 1 : 0)
