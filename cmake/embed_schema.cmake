# Embeds schema/results.sql and schema/migrations/NNN_*.sql into tp_store as a generated C file,
# so the telepathy binary carries its schema and never reads the source tree at run time.
# The generator (embed_schema_gen.cmake) re-runs whenever a .sql file changes; adding a
# migration re-globs at configure time (CONFIGURE_DEPENDS).
file(GLOB TP_SCHEMA_SQL CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/schema/results.sql
     ${CMAKE_SOURCE_DIR}/schema/migrations/*.sql)
set(TP_SCHEMA_C ${CMAKE_BINARY_DIR}/generated/schema_sql.c)
add_custom_command(
  OUTPUT ${TP_SCHEMA_C}
  COMMAND ${CMAKE_COMMAND} -DSCHEMA_DIR=${CMAKE_SOURCE_DIR}/schema -DOUT=${TP_SCHEMA_C}
          -P ${CMAKE_SOURCE_DIR}/cmake/embed_schema_gen.cmake
  DEPENDS ${TP_SCHEMA_SQL} ${CMAKE_SOURCE_DIR}/cmake/embed_schema_gen.cmake
  COMMENT "Embedding schema/*.sql into the store"
  VERBATIM)
target_sources(tp_store PRIVATE ${TP_SCHEMA_C})
