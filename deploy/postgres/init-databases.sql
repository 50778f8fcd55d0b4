-- One database per service and one for the gateway (run once, by the postgres image, on an empty volume).
-- Each service's own schema and tables are created by `crp migrate` (the `migrate` step of docker-compose.yml,
-- the migration Job on Kubernetes). Keep this list in step with shared/catalog.py (tests/deploy checks it).
CREATE DATABASE beneficiaries;
CREATE DATABASE grants;
CREATE DATABASE training;
CREATE DATABASE infrastructure;
CREATE DATABASE feedback;
CREATE DATABASE indicators;
CREATE DATABASE gateway;
