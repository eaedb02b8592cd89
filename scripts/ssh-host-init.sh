#!/usr/bin/env bash
# PID 1 of one SSH test host (started by scripts/ssh-host.sh; docs/ssh-test-hosts.md).
#
# Runs inside: ip netns exec <ns> unshare --mount --uts --ipc --pid --fork --mount-proc
# so it already has its own network, mount, UTS, IPC and PID namespaces. It gives
# the host a private /etc (a copy, bind-mounted as a *directory*: useradd and
# chpasswd replace /etc/passwd by rename(2), which fails with EBUSY on a
# bind-mounted file), private /home, /root, /var/log, /var/mail, /tmp and /run,
# then runs sshd. When this process dies the kernel kills everything in the PID
# namespace, and the mount namespace (with all its tmpfs) goes away.
#
# Builtins where possible: every fork counts when a test suite starts many hosts.
set -euo pipefail

state=$1
umask 022

# unshare(1) already defaults to --propagation private; say it explicitly, since
# nothing below may ever propagate back to the test machine's mount table.
mount --make-rprivate /

# Private /run first; the state dir (usually under /tmp) stays reachable at
# /run/jgt after /tmp goes private.
mount -t tmpfs -o mode=0755,size=16m jgt-run /run
mkdir -m 0755 /run/sshd /run/jgt
mount --bind "$state" /run/jgt

# The copy of /etc lives on a tmpfs mounted at <state>/etc in this mount namespace
# only: copying ~1300 files to tmpfs is several times faster than to disk, and
# the copy vanishes with the host. It runs while the other mounts are made.
mount -t tmpfs -o mode=0755,size=64m jgt-etc /run/jgt/etc
cp -a /etc/. /run/jgt/etc/ &
copy=$!

mount -t tmpfs -o mode=0755,size=64m jgt-home /home
mount -t tmpfs -o mode=0700,size=16m jgt-root /root
mount -t tmpfs -o mode=0755,size=32m jgt-log /var/log
# Debian: /var/spool/mail -> ../mail. Mount whichever is the real directory (both if both are).
mount -t tmpfs -o mode=2775,gid=8,size=8m jgt-mail /var/mail
if [ -d /var/spool/mail ] && [ ! -L /var/spool/mail ]; then
  mount -t tmpfs -o mode=2775,gid=8,size=8m jgt-spool /var/spool/mail
fi
mount -t tmpfs -o mode=1777,size=64m jgt-tmp /tmp

# A file vanishing mid-copy (a package install on the test machine) is not fatal.
wait "$copy" || echo "ssh-host-init: copy of /etc incomplete" >&2
# The machine's own host keys have no business in the test host.
rm -f /run/jgt/etc/ssh/ssh_host_*
# pam_unix waits ~2 s after a failed password (pam_fail_delay); tests that
# check refused logons would spend most of their time there. Test host only.
if [ -f /run/jgt/etc/pam.d/common-auth ]; then
  sed -i -E 's/^(auth[[:space:]].*pam_unix\.so.*)$/\1 nodelay/' /run/jgt/etc/pam.d/common-auth
fi
# The directory, never single files: useradd & co. replace files by rename(2).
mount --bind /run/jgt/etc /etc

read -r name </run/jgt/hostname
printf '%s\n' "$name" >/proc/sys/kernel/hostname
# sudo resolves the host's own name (sudoers Host_Alias matching): without an
# entry it prints "unable to resolve host <name>" before every result.
printf '%s\n' "$name" >/etc/hostname
printf '127.0.1.1\t%s\n' "$name" >>/etc/hosts
: >/var/log/lastlog
: >/var/log/wtmp
: >/run/utmp
(umask 077; : >/var/log/btmp)

read -r admin_key </run/jgt/admin_ed25519.pub
(umask 077; mkdir /root/.ssh; printf '%s\n' "$admin_key" >/root/.ssh/authorized_keys)

# scripts/ssh-host.sh wires the veth meanwhile; sshd must not bind before the address exists.
exec {tick}<> <(:)
for (( i = 0; i < 2000; i++ )); do
  [ -e /run/jgt/net-ready ] && break
  read -r -t 0.002 -u "$tick" _ || true
done

/usr/sbin/sshd -D -e -f /run/jgt/sshd_config &
# PID 1 reaps orphans; when sshd exits, so does the whole namespace.
wait "$!"
