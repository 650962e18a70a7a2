#!/bin/bash
# Mount the persistent home volume on a node at boot, formatting it only when it is blank.
#
#   mount-home.sh [DEVICE|wait] [MOUNTPOINT] [ACCOUNT]
#
# DEVICE defaults to the first whole disk that is not the root filesystem's disk (Cinder and
# EBS attach the home at boot as the next virtio/NVMe disk); MOUNTPOINT defaults to /home.
# "wait": the home is attached after boot (EC2Spawner attaches it once the instance runs, and
# its boot script calls this with "wait"): wait up to 120 s for that disk, fail without it.
# ACCOUNT: on a new (just formatted) volume, MOUNTPOINT/ACCOUNT is created and given to it.
# Run it before the bootstrap's node agent (a systemd unit ordered Before=cloud-final.service,
# or a cloud-init bootcmd). No extra disk: the home stays on the root disk and it exits 0.
# A disk whose content blkid cannot classify for certain is never formatted.
set -euo pipefail

device=${1:-}
target=${2:-/home}
account=${3:-}

other_disk() {
  root_source=$(findmnt -no SOURCE /)
  root_disk=$(lsblk -no PKNAME "$root_source" 2>/dev/null | head -n1)
  lsblk -dpno NAME,TYPE | awk -v root="/dev/${root_disk}" '$2 == "disk" && $1 != root { print $1; exit }'
}

if [ "$device" = "wait" ]; then
  device=""
  for _ in $(seq 1 120); do
    device=$(other_disk)
    [ -n "$device" ] && break
    sleep 1
  done
  if [ -z "$device" ]; then
    echo "mount-home: no home disk was attached within 120 s" >&2
    exit 1
  fi
elif [ -z "$device" ]; then
  device=$(other_disk)
fi
if [ -z "$device" ]; then
  echo "mount-home: no home disk attached; the home stays on the root disk" >&2
  exit 0
fi

# An attachment can take a few seconds to show up after boot.
for _ in $(seq 1 60); do
  [ -b "$device" ] && break
  sleep 1
done
if [ ! -b "$device" ]; then
  echo "mount-home: $device did not appear within 60 s" >&2
  exit 1
fi

# blkid -p: 0 = a filesystem (or other signature) found, 2 = nothing found; anything else
# (ambivalent result, I/O error) means "do not touch".
set +e
blkid -p "$device" >/dev/null 2>&1
probe=$?
set -e
if [ "$probe" -eq 2 ]; then
  echo "mount-home: $device is blank: creating an ext4 filesystem" >&2
  mkfs.ext4 -q -L hybrid-home "$device"
elif [ "$probe" -ne 0 ]; then
  echo "mount-home: blkid could not tell what is on $device (status $probe); not formatting it" >&2
  exit 1
fi

mkdir -p "$target"
if ! mountpoint -q "$target"; then
  mount "$device" "$target"
fi
if [ -n "$account" ] && [ ! -e "$target/$account" ]; then
  install -d -m 0700 -o "$account" -g "$(id -gn "$account")" "$target/$account"
fi
echo "mount-home: $device mounted on $target" >&2
