-- One database for the platform; each service migrates its own schema at start-up.
CREATE DATABASE crp;
