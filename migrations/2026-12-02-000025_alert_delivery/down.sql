DROP INDEX alerts_open_activated;
DROP TABLE alert_deliveries;
DROP TABLE alert_events;
