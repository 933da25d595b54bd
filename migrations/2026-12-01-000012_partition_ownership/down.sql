DROP TABLE detector_checkpoints;
DROP TABLE detector_epochs;
