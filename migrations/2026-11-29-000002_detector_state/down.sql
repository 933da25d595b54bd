DROP TABLE detector_state;
