# Turns one .spv file into a C file holding its 32-bit words (little-endian, as SPIR-V is
# stored by glslangValidator on every platform we build on).
file(READ ${SPV} hex HEX)
string(LENGTH "${hex}" len)
math(EXPR nbytes "${len} / 2")
math(EXPR rem "${nbytes} % 4")
if(NOT rem EQUAL 0)
  message(FATAL_ERROR "${SPV}: size ${nbytes} is not a multiple of 4")
endif()
# Regroup bytes b0 b1 b2 b3 into the word 0xb3b2b1b0.
string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u," words "${hex}")
string(REGEX REPLACE "((0x[0-9a-f]+u,){8})" "\\1\n" words "${words}")
math(EXPR nwords "${nbytes} / 4")
file(WRITE ${OUT} "/* Generated from ${NAME}.spv by cmake/embed_spirv.cmake. */\n#include <stddef.h>\n#include <stdint.h>\nconst uint32_t aps_spv_${NAME}[${nwords}] = {\n${words}\n};\nconst size_t aps_spv_${NAME}_size = sizeof(aps_spv_${NAME});\n")
