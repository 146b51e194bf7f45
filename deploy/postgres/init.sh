#!/usr/bin/env bash
# Creates, in the database $POSTGRES_DB, one login role and one schema per CUDly
# service (accounts, planner, executor, sweeper, gateway), each role owning its own
# schema and nothing else, and makes those roles authenticate with a password.
#
# The postgres image runs it once, when its data directory is first initialised
# (compose.yaml mounts it into /docker-entrypoint-initdb.d). It is idempotent, so it
# can also be re-run by hand against an existing volume, e.g. after changing a
# password:  docker compose exec postgres bash /docker-entrypoint-initdb.d/10-cudly-roles.sh
#
# Passwords come from <SERVICE>_DB_PASSWORD (compose passes the dev-only defaults of
# compose.yaml). They reach psql as psql variables, never through the shell or argv
# of a SQL string, so any character is safe.
#
# Why each role gets CREATE on the database: every service applies its migrations at
# start-up with sqlx, which first runs `CREATE SCHEMA IF NOT EXISTS <schema>`, and
# PostgreSQL checks the database-level CREATE privilege before it looks whether the
# schema exists. A role can therefore create new, empty schemas of its own, but it
# has no privilege at all on the other services' schemas or on `public`.
set -euo pipefail

services=(accounts planner executor sweeper gateway)
database="${POSTGRES_DB:-cudly}"
superuser="${POSTGRES_USER:-postgres}"

psql_vars=(-v ON_ERROR_STOP=1 -v "db=${database}")
for service in "${services[@]}"; do
  password_var="${service^^}_DB_PASSWORD"
  password="${!password_var:-}"
  if [[ -z "${password}" ]]; then
    echo "cudly init: ${password_var} is not set" >&2
    exit 1
  fi
  psql_vars+=(-v "pw_${service}=${password}")
done

role_sql() {
  local role="$1"
  # Role and schema names are the fixed identifiers above; passwords stay psql
  # variables (:'pw_<role>'), which psql quotes as literals.
  cat <<SQL
SELECT 'CREATE ROLE ${role}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') \gexec
ALTER ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD :'pw_${role}';
ALTER ROLE ${role} SET search_path = ${role};
GRANT CONNECT, CREATE ON DATABASE :"db" TO ${role};
CREATE SCHEMA IF NOT EXISTS ${role} AUTHORIZATION ${role};
ALTER SCHEMA ${role} OWNER TO ${role};
REVOKE ALL ON SCHEMA ${role} FROM PUBLIC;
SQL
}

{
  echo "SET password_encryption = 'scram-sha-256';"
  # Nobody but the roles below (and the superuser) may connect to the database, and
  # nobody may use the public schema: each service lives in its own schema only.
  echo 'REVOKE ALL ON DATABASE :"db" FROM PUBLIC;'
  echo 'REVOKE ALL ON SCHEMA public FROM PUBLIC;'
  for service in "${services[@]}"; do
    role_sql "${service}"
  done
} | psql "${psql_vars[@]}" --no-psqlrc --username "${superuser}" --dbname "${database}"

# The compose file keeps trust authentication for the superuser (the README's quick
# start and the tests connect as postgres without a password), so the service roles
# get password lines placed before the image's catch-all trust line: their passwords
# are really checked, as they are in production. Only done on first initialisation,
# when PGDATA is this server's data directory.
hba="${PGDATA:-}/pg_hba.conf"
if [[ -n "${PGDATA:-}" && -w "${hba}" ]] && ! grep -q '^# cudly service roles' "${hba}"; then
  roles="$(IFS=,; echo "${services[*]}")"
  {
    echo '# cudly service roles: password (scram-sha-256) over TCP and the local socket'
    echo "host  all ${roles} all scram-sha-256"
    echo "local all ${roles}     scram-sha-256"
    cat "${hba}"
  } >"${hba}.cudly"
  mv "${hba}.cudly" "${hba}"
  echo "cudly init: roles ${roles} require a password"
fi
