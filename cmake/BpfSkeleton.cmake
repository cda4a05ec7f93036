# steer_bpf_skeleton(<name> SOURCE <file.bpf.c> [DEFINES <NAME[=VALUE]>...] [DEPENDS <headers>...]
#                    [CFLAGS <flag>...])
#
# Compiles one BPF C file with clang -target bpf and generates <name>.skel.h with
# bpftool gen skeleton, so the object is embedded in whatever includes the header.
# CFLAGS go after the defaults (a later -mcpu wins), e.g. -mcpu=v2 for bench/peers/lpm_peer.bpf.c,
# which must compile to the instructions of the program it stands in for.
# Creates an INTERFACE target bpf_<name> that puts the generated header on the include path.
find_program(STEER_CLANG NAMES clang clang-14 REQUIRED)
find_program(STEER_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
                OUTPUT_VARIABLE STEER_HOST_TRIPLE OUTPUT_STRIP_TRAILING_WHITESPACE)

function(steer_bpf_skeleton name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCE" "DEFINES;DEPENDS;CFLAGS")
  if(NOT arg_SOURCE)
    message(FATAL_ERROR "steer_bpf_skeleton(${name}): SOURCE is required")
  endif()
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/skel)
  set(object ${out_dir}/${name}.bpf.o)
  set(skeleton ${out_dir}/${name}.skel.h)
  get_filename_component(source ${arg_SOURCE} ABSOLUTE)
  list(TRANSFORM arg_DEFINES PREPEND -D)

  add_custom_command(
    OUTPUT ${object}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${STEER_CLANG} -O2 -g -target bpf -mcpu=v3 -Wall -Werror
            ${arg_CFLAGS} ${arg_DEFINES} -I/usr/include/${STEER_HOST_TRIPLE} -I${PROJECT_SOURCE_DIR}/src
            -c ${source} -o ${object}
    DEPENDS ${source} ${arg_DEPENDS}
    COMMENT "BPF ${name}: compiling ${arg_SOURCE}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skeleton}
    COMMAND ${STEER_BPFTOOL} gen skeleton ${object} name ${name} > ${skeleton}
    DEPENDS ${object}
    COMMENT "BPF ${name}: generating skeleton"
    VERBATIM)
  add_custom_target(bpf_${name}_gen DEPENDS ${skeleton})
  add_library(bpf_${name} INTERFACE)
  add_dependencies(bpf_${name} bpf_${name}_gen)
  target_include_directories(bpf_${name} INTERFACE ${out_dir})
endfunction()
