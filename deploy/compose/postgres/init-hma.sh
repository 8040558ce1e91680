#!/bin/sh
# First start of the Postgres volume: a database and role for HMA next to the gate's.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v hma_password="$HMA_DB_PASSWORD" <<'SQL'
CREATE ROLE media_match LOGIN PASSWORD :'hma_password';
CREATE DATABASE media_match OWNER media_match;
SQL
