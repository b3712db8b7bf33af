#!/bin/sh
# numcfg in its container (docker/numcfg.Dockerfile), as the numcfg user. Says clearly
# what is wrong with the mounts instead of failing later, writes the dialplan of the
# mounted config where Asterisk includes it, then runs CMD. Changes no ownership: the
# config is mounted read-only and stays so.
# NUMCFG_ENTRYPOINT_ROOT prefixes the state paths (tests run this script on a scratch tree).
set -eu
root="${NUMCFG_ENTRYPOINT_ROOT:-}"
config="${NUMCFG_CONFIG:-/etc/numcfg/numcfg.yaml}"
state="$root/var/lib/numcfg"
dialplan_dir="$root/var/lib/asterisk/numcfg"
if [ ! -r "$config" ]; then
  echo "numcfg: cannot read $config: mount your numcfg.yaml there (read-only is fine)" >&2
  exit 1
fi
if [ ! -w "$state" ]; then
  echo "numcfg: $state is not writable by uid $(id -u): it holds the store, recordings" \
       "and voicemail (a named volume, or a folder owned by uid $(id -u))" >&2
  exit 1
fi
if [ -w "$dialplan_dir" ]; then
  numcfg dialplan -c "$config" >"$dialplan_dir/numcfg-dialplan.conf.tmp"
  mv "$dialplan_dir/numcfg-dialplan.conf.tmp" "$dialplan_dir/numcfg-dialplan.conf"
fi
exec "$@"
