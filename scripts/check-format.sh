#!/bin/sh
# clang-format check over our C/CUDA sources (--fix rewrites them in place).
cd "$(dirname "$0")/.."
files=$(git ls-files 'harness/*.c' 'harness/*.h' 'plugins/*.c' 'tests/*.c' 'tests/*.h' 'kernels/*.cu' 'kernels/*.h' 2>/dev/null)
[ -z "$files" ] && exit 0
if [ "$1" = "--fix" ]; then
  clang-format -i $files
  exit 0
fi
bad=0
for f in $files; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "format: $f differs from .clang-format (run 'make format')"; bad=1
  fi
done
exit $bad
