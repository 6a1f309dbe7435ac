-- Paused journeys: `cairn pause JOURNEY` holds every run of the journey where it is
-- until `cairn resume`. Keyed by the journey's name, so a pause outlives deploys.
-- PostgreSQL has the same in postgres/0005_paused_journeys.sql.
CREATE TABLE paused_journeys (
    journey   TEXT    PRIMARY KEY,
    paused_at INTEGER NOT NULL
);
