#!/bin/bash
# cli_usage.sh — CLI usage and exit codes: `telepathy --help` and every subcommand's --help exit
# 0 and print a usage line; an unknown subcommand or option prints usage and exits 2; plugins,
# config and version work end to end (the toy task is found on the plugin path).
# Env (set by ctest): TELEPATHY = the binary, TELEPATHY_PLUGIN_PATH = the built plugins.
set -u
T=${TELEPATHY:?TELEPATHY must point at the telepathy binary}
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
unset TELEPATHY_CONFIG

# expect CODE DESCRIPTION -- command...; output in $work/out, $work/err
expect() {
  local want=$1 what=$2
  shift 3
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ "$rc" != "$want" ]; then
    echo "FAIL: $what: exit $rc, expected $want ($*)"
    sed 's/^/  stdout: /' "$work/out" | head -5
    sed 's/^/  stderr: /' "$work/err" | head -5
    fail=1
  fi
}
# contains FILE TEXT DESCRIPTION
contains() {
  if ! grep -qF -- "$2" "$work/$1"; then
    echo "FAIL: $3: '$2' not in $1"
    sed "s/^/  $1: /" "$work/$1" | head -8
    fail=1
  fi
}

expect 0 "global --help" -- "$T" --help
contains out "usage: telepathy" "global --help"
expect 2 "no subcommand" -- "$T"
contains err "usage: telepathy" "no subcommand prints usage"
expect 2 "unknown subcommand" -- "$T" pluginz
contains err "unknown command 'pluginz'; did you mean 'plugins'?" "unknown subcommand"
contains err "usage: telepathy" "unknown subcommand prints usage"
expect 2 "unknown global option" -- "$T" --frobnicate version
contains err "unknown option '--frobnicate'" "unknown global option"
expect 2 "global option without value" -- "$T" version --config
expect 0 "--version" -- "$T" --version

# every command listed by --help (new rows are covered automatically)
cmds=$("$T" --help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1} f&&/^$/{exit}')
[ -n "$cmds" ] || { echo "FAIL: no commands parsed from --help"; fail=1; }
for c in $cmds; do
  expect 0 "$c --help" -- "$T" "$c" --help
  grep -qi "usage" "$work/out" || { echo "FAIL: '$c --help' prints no usage line"; fail=1; }
  expect 2 "$c with an unknown option" -- "$T" "$c" --no-such-option-xyz
done
for c in run ls show db plugins config version; do
  echo "$cmds" | grep -qx "$c" || { echo "FAIL: command '$c' missing from --help"; fail=1; }
done

# the subcommands of this issue, end to end
expect 0 "version" -- "$T" version
contains out "plugin ABI  1.2" "version shows the ABI"
contains out "SQLite" "version shows SQLite"
contains out "Lua         Lua 5.4" "version shows Lua"
expect 0 "plugins" -- "$T" plugins
contains out "task   toy 1" "plugins lists the toy task"
contains out "n_classes" "plugins lists options"
expect 0 "plugins --kind task toy" -- "$T" plugins --kind task toy
expect 0 "plugins --sha256" -- "$T" plugins --sha256 toy
grep -qE '^  sha256 [0-9a-f]{64}$' "$work/out" || { echo "FAIL: plugins --sha256 prints no digest"; fail=1; }
expect 2 "plugins --kind bad" -- "$T" plugins --kind widget
expect 1 "plugins NAME that does not exist" -- "$T" plugins --kind task no_such_task
expect 1 "plugin path that does not exist" -- "$T" --plugin-path "$work/nope" plugins
contains err "$work/nope is not a directory" "bad plugin path names the dir"

expect 0 "config" -- "$T" config
contains out "device.device" "config lists keys"
contains out "# default" "config shows origins"
contains out "# env TELEPATHY_PLUGIN_PATH" "config shows the env origin"
printf '[device]\ndtype = bf16\n' >"$work/t.ini"
expect 0 "config --config" -- "$T" --config "$work/t.ini" config
contains out "$work/t.ini:2" "config shows file:line"
expect 0 "config --get" -- "$T" --config "$work/t.ini" config --get device.dtype
contains out "bf16" "config --get prints the value"
cp "$work/t.ini" "$work/telepathy.ini"
expect 0 "./telepathy.ini is found" -- "$T" config --get device.dtype
contains out "bf16" "./telepathy.ini is read"
rm "$work/telepathy.ini"
TELEPATHY_CONFIG="$work/t.ini" expect 0 "\$TELEPATHY_CONFIG" -- "$T" config --get device.dtype
expect 0 "config --set" -- "$T" config --set device.dtype=f32 --get device.dtype
contains out "f32" "config --set overrides"
expect 1 "config --set bad value" -- "$T" config --set device.dtype=f64
contains err "not one of f32|bf16" "config --set validates"
expect 1 "missing config file" -- "$T" --config "$work/missing.ini" config
contains err "missing.ini: cannot open" "missing config names the file"
printf '[device]\ndtyp = bf16\n' >"$work/bad.ini"
expect 1 "unknown key in config" -- "$T" --config "$work/bad.ini" config
contains err "bad.ini:2: unknown key 'dtyp' in [device]; did you mean 'dtype'?" "unknown key"
# --help works even when the configuration is broken
expect 0 "help with a broken config" -- "$T" --config "$work/bad.ini" plugins --help
expect 0 "-q anywhere" -- "$T" config -q --get device.device

[ $fail = 0 ] && echo "cli_usage: all checks passed"
exit $fail
