import { AgentError } from "../../errors.js";

/**
 * The guest's boot: the initramfs `/init` loads the virtio modules, mounts the root disk, gives
 * eth0 the fixed guest address (the netns NATs the sandbox address to it, so a VM restored from
 * a snapshot needs no renumbering), copies envd's environment from fw_cfg (readable by root
 * only, unlike the kernel command line) and switches root to tini, which reaps orphans as PID 1
 * and runs START below.
 */
export const GUEST_ADDRESS = "169.254.0.2";
export const GUEST_GATEWAY = "169.254.0.1";
export const GUEST_PREFIX = 30;
/** fw_cfg entry holding envd's environment (shell assignments). */
export const FW_CFG_ENV = "opt/wrenn/env";
/** Where the image carries the guest's own tools. */
export const GUEST_DIR = "/opt/wrenn";

export function initScript(modules: readonly string[]): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${modules.join(" ")}; do
  insmod /mod/$m.ko || echo "wrenn-init: cannot load $m"
done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 1000 ]; do sleep 0.01; n=$((n+1)); done
mount -t ext4 -o noatime /dev/vda /newroot || { echo "wrenn-init: no root disk"; poweroff -f; }
/sbin/resize2fs /dev/vda >/dev/null 2>&1 || echo "wrenn-init: cannot grow the root filesystem"
ip link set lo up
ip addr add ${GUEST_ADDRESS}/${GUEST_PREFIX} dev eth0
ip link set eth0 up
ip route add default via ${GUEST_GATEWAY}
mount -t tmpfs -o mode=755 run /newroot/run
mkdir -p /newroot/run/wrenn
env=/sys/firmware/qemu_fw_cfg/by_name/${FW_CFG_ENV}/raw
[ -r $env ] && cat $env > /newroot/run/wrenn/env
chmod 600 /newroot/run/wrenn/env 2>/dev/null
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot ${GUEST_DIR}/bin/tini -s -g -- ${GUEST_DIR}/bin/busybox sh ${GUEST_DIR}/start
`;
}

/** Run by tini in the guest's root: the mounts envd relies on, then envd itself. */
export const START_SCRIPT = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
b=${GUEST_DIR}/bin/busybox
$b mount -t proc proc /proc
$b mount -t sysfs sys /sys
$b mkdir -p /dev/pts /dev/shm
$b mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
$b ln -sf pts/ptmx /dev/ptmx
$b mount -t tmpfs -o mode=1777 shm /dev/shm
$b hostname sandbox
set -a
[ -r /run/wrenn/env ] && . /run/wrenn/env
set +a
# envd's token is in its environment now: no copy stays for a process in the guest to read.
$b rm -f /run/wrenn/env
export PATH HOME=/root
exec /usr/bin/node ${GUEST_DIR}/envd/envd.js
`;

/** Shell assignments for the fw_cfg env file; names are checked, values single-quoted. */
export function envFile(envs: Readonly<Record<string, string>>): string {
  return Object.entries(envs)
    .map(([key, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
        throw new AgentError("invalid_argument", `invalid environment variable name: ${key}`);
      }
      return `${key}='${value.replaceAll("'", `'\\''`)}'\n`;
    })
    .join("");
}
