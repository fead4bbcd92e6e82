# Turns sql/NNN_name.sql into a C++ table so the binary carries its migrations.
file(GLOB files "${SRC}/sql/*.sql")
list(SORT files)
set(out "// generated from persistence/sql by embed_sql.cmake\n#include \"persistence/migrations.hpp\"\nnamespace emporium::persistence {\nconst std::vector<migration>& migrations() {\n  static const std::vector<migration> all{\n")
foreach(f ${files})
  get_filename_component(name ${f} NAME_WE)
  string(REGEX MATCH "^[0-9]+" num ${name})
  math(EXPR num "${num}") # "008" would be an invalid octal literal
  file(READ ${f} body)
  string(APPEND out "    {${num}, \"${name}\", R\"emporium_sql(${body})emporium_sql\"},\n")
endforeach()
string(APPEND out "  };\n  return all;\n}\n}\n")
file(WRITE "${OUT}.tmp" "${out}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
