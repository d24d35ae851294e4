# gitinfo.cmake — writes OUT (tp_gitinfo.h) with the source tree's git commit for
# `telepathy version`; run at every build, rewrites the file only when the commit or the dirty
# state changed, so nothing recompiles needlessly. Without git (or outside a checkout) the file
# says so and the binary prints "unknown".
execute_process(COMMAND git -C "${SRC}" rev-parse --short=12 HEAD
  OUTPUT_VARIABLE commit RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(rc EQUAL 0 AND commit)
  execute_process(COMMAND git -C "${SRC}" status --porcelain --untracked-files=no
    OUTPUT_VARIABLE dirty ERROR_QUIET)
  if(dirty)
    set(commit "${commit}-dirty")
  endif()
  set(content "#define TP_GIT_COMMIT \"${commit}\"\n")
else()
  set(content "/* not built from a git checkout: commit unknown */\n")
endif()
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUT}" "${content}")
endif()
