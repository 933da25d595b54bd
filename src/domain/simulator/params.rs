//! The simulator's parameters. docs/GENERATOR.md lists each with its source.

/// Start of simulated time, 2026-01-01T00:00:00Z. Fixed, so the daily rhythm, and with it the
/// (customer, heart rate) sequence, does not depend on when the generator runs.
pub const SIM_START_UNIX_SECS: i64 = 1_767_225_600;

/// The shortest simulated time between two readings of one customer, seconds.
pub(super) const MIN_READING_INTERVAL_S: f64 = 1e-6;

/// Mean resting heart rate of the simulated adults, bpm: between the ~70 of clinical norms and
/// the ~65 measured by wearables over a large cohort (Quer et al. 2020), nudged up because the
/// fleet is drawn from the adults whose resting rate lies inside the fleet's normal band.
pub(super) const REST_MEAN_BPM: f64 = 70.0;
/// Spread of resting heart rate between people, bpm (Quer et al. 2020: roughly 8; a little
/// less here, as the tails are cut off below).
pub(super) const REST_SD_BPM: f64 = 7.0;
/// Lowest resting rate drawn: trained people go lower, but a resting rate below the fleet's
/// 60 bpm would page bradycardia all day. Such customers need rules of their own (`rules`),
/// which the simulated fleet does not model.
pub(super) const REST_MIN_BPM: f64 = 65.0;
/// Highest resting rate drawn: well under tachycardia, which resting rates above 100 are.
pub(super) const REST_MAX_BPM: f64 = 90.0;
/// Youngest and oldest simulated adult, years (uniform).
pub(super) const AGE_YEARS: (u8, u8) = (20, 79);
/// Maximum heart rate = `TANAKA_INTERCEPT_BPM - TANAKA_SLOPE * age` (Tanaka et al. 2001).
pub(super) const TANAKA_INTERCEPT_BPM: f32 = 208.0;
/// See [`TANAKA_INTERCEPT_BPM`].
pub(super) const TANAKA_SLOPE: f32 = 0.7;
/// The smallest heart-rate reserve (max - rest) used, bpm, so an odd profile still has room to
/// exercise.
pub(super) const MIN_RESERVE_BPM: f32 = 20.0;
/// UTC offsets of the customers, in quarter hours, drawn uniformly: the Americas, Europe, Africa,
/// Asia and Oceania, so at any instant some customers sleep while others are active.
pub(super) const TIME_ZONES_QH: [i8; 14] =
    [-32, -28, -24, -20, -12, 0, 4, 8, 12, 22, 28, 32, 36, 40];
/// Earliest wake-up, local minutes after midnight (05:30), and the spread after it (to 08:30).
pub(super) const WAKE_MIN: (u16, u16) = (330, 180);
/// Shortest night, minutes (6.5 h), and the spread above it (to 8.5 h).
pub(super) const SLEEP_LENGTH_MIN: (u16, u16) = (390, 120);

/// Heart rate asleep is at least this share below resting ...
pub(super) const SLEEP_DIP: f32 = 0.10;
/// ... and up to this much more below it at the circadian nadir ...
pub(super) const SLEEP_NADIR_EXTRA_DIP: f32 = 0.06;
/// ... which falls at this local hour (early morning).
pub(super) const NADIR_HOUR: f64 = 4.0;
/// Amplitude of the circadian swing of the heart rate at rest while awake, bpm ...
pub(super) const REST_CIRCADIAN_BPM: f32 = 2.5;
/// ... peaking at this local hour (afternoon).
pub(super) const REST_PEAK_HOUR: f64 = 15.0;
/// Light activity (`active`): share of the heart-rate reserve above resting, drawn per bout (ACSM very
/// light to light: below 40 % of the reserve).
pub(super) const LIGHT_RESERVE: (f32, f32) = (0.10, 0.30);
/// Exercise: share of the heart-rate reserve above resting, drawn per bout (ACSM moderate to
/// vigorous: 40-89 % of the reserve).
pub(super) const EXERCISE_RESERVE: (f32, f32) = (0.50, 0.80);
/// How long one bout lasts, minutes, by activity (rest, active, exercise), drawn uniformly.
pub(super) const DWELL_MIN: [(u32, u32); 3] = [(15, 90), (5, 40), (20, 60)];
/// Relative weight of (rest, active, exercise) at the next change of activity, by part of the
/// waking day; the exercise weight is scaled by the customer's fitness (0..1, mean 0.5), which
/// gives about half an hour of exercise a day on average.
pub(super) const AWAKE_WEIGHTS: [(u32, f64, f64, f64); 4] = [
    // (until local hour, rest, active, exercise)
    (10, 0.55, 0.40, 0.08),
    (17, 0.50, 0.48, 0.04),
    (21, 0.55, 0.38, 0.10),
    (24, 0.80, 0.20, 0.00),
];

/// Time constant of the heart rate's approach to a new activity level, seconds (on- and
/// off-kinetics of roughly half a minute to a minute).
pub(super) const APPROACH_TAU_S: f64 = 45.0;
/// Fastest natural change, bpm per second between readings of a customer ...
pub(super) const NATURAL_SLOPE_BPM_PER_S: f64 = 0.75;
/// ... and the bounds on the natural change per reading whatever the interval, bpm: at sparse
/// sampling (minutes between readings) the level lags the activity instead of jumping.
pub(super) const NATURAL_STEP_BPM: (f64, f64) = (2.0, 20.0);
/// Time constant of the slow random wander around the activity level, seconds ...
pub(super) const DRIFT_TAU_S: f64 = 300.0;
/// ... its standard deviation, bpm ...
pub(super) const DRIFT_SD_BPM: f64 = 2.0;
/// ... and its bound, bpm (two standard deviations): a natural resting heart never wanders far
/// enough from its own level to look like a deviation.
pub(super) const DRIFT_BOUND_BPM: f32 = 4.0;
/// Sensor noise, standard deviation in bpm, by activity (sleep, rest, active, exercise): wrist
/// optical sensors are accurate to a few bpm at rest and worse in motion ...
pub(super) const NOISE_SD_BPM: [f32; 4] = [1.0, 1.5, 2.0, 3.0];
/// ... cut off at this many standard deviations, so an injected level with a margin of
/// 3 x 1.5 bpm from its band's edges never leaves its band.
pub(super) const NOISE_BOUND_SD: f32 = 3.0;
/// Where a natural or shifted (deviation) reading at rest lies before noise, bpm: inside the
/// fleet's normal band (60-100) with a margin of 2.3 noise SDs, so resting readings never sustain
/// bradycardia or tachycardia; noise takes a single reading out now and then, seldom two in a row.
pub(super) const REST_SLOW_BPM: (f32, f32) = (63.5, 96.5);
/// The highest natural level while active or exercising, bpm (85 % of a 20-year-old's maximum):
/// with noise it stays below the critical band (above 180), which pages whatever the activity.
pub(super) const ACTIVE_SLOW_MAX_BPM: f32 = 165.0;
/// A reading says `rest` only once the heart has settled within this many bpm of its resting
/// level: on the way down from exercise it says `active` (recovery), on the way up from sleep
/// `sleep` (waking), as a wearable that reads the heart as well as the motion would.
pub(super) const SETTLE_BPM: f32 = 4.0;
/// The range of a non-injected reading, bpm.
pub(super) const NATURAL_BPM: (i16, i16) = (30, 220);
/// The range of any reading, bpm: the validation defaults, so every reading is valid.
pub(super) const VALID_BPM: (i16, i16) = (20, 250);
/// Largest step between two non-injected readings of a customer, bpm (below the default
/// `detector.spike_bpm` of 30, or below `spike_bpm` when that is smaller): natural readings
/// never raise a spike, so every spike the detector finds outside an injected one is a false
/// positive.
pub(super) const MAX_NATURAL_STEP_BPM: i64 = 29;

/// No episode starts for a customer before it has sent this many readings at rest: twice the
/// detector's default warm-up (`detector.warmup_readings` = 30), so its baseline is known.
pub(super) const WARM_REST_READINGS: u8 = 60;
/// Time in the injected band, seconds (uniform), for bradycardia and tachycardia (resting
/// brady- or tachycardia worth a page lasts longer than the 10 minutes of sustain) ...
pub(super) const BRADY_TACHY_HOLD_S: (f64, f64) = (15.0 * 60.0, 45.0 * 60.0);
/// ... for critical episodes ...
pub(super) const CRITICAL_HOLD_S: (f64, f64) = (60.0, 5.0 * 60.0);
/// ... and of a deviation's shift.
pub(super) const DEVIATION_HOLD_S: (f64, f64) = (20.0 * 60.0, 60.0 * 60.0);
/// A critical episode holds for at least this many readings, so that the tachycardia (or
/// bradycardia) its ramps cross resolves between the way in and the way out
/// (`detector.resolve_after_readings` = 3) and never adds up to a sustained one.
pub(super) const CRITICAL_MIN_HOLD_READINGS: f64 = 3.0;
/// After a threshold or deviation episode the customer rests at least this long: the alert
/// resolves on resting readings, not on a change of activity.
pub(super) const REST_AFTER_EPISODE_S: f64 = 120.0;
/// Threshold episodes move toward and away from their level by at most this share of
/// `spike_bpm` per reading: fast, yet never a spike.
pub(super) const EPISODE_STEP_SHARE: f32 = 0.7;
/// A spike jumps by `spike_bpm` plus this many bpm (uniform), so the jump is a spike for sure.
pub(super) const SPIKE_EXTRA_BPM: (i64, i64) = (5, 30);
/// A deviation shifts a customer's resting readings by this many bpm (uniform), inside the
/// normal band.
pub(super) const DEVIATION_BPM: (f32, f32) = (15.0, 30.0);
/// A resting reading at least this far from the customer's resting level is a deviation for
/// sure (4 standard deviations of 3 bpm, the defaults, are 12) ...
pub(super) const DEVIATION_SURE_BPM: f32 = 15.0;
/// ... and one at most this far never is.
pub(super) const DEVIATION_NEVER_BPM: f32 = 8.0;
/// The default `alerts.sustain_ms.deviation`, seconds: whether a critical episode is long
/// enough to page `deviation` too.
pub(super) const DEVIATION_SUSTAIN_S: f64 = 120.0;
/// A critical episode whose deviation would last within this many seconds (plus two reading
/// intervals) of [`DEVIATION_SUSTAIN_S`] is held longer, so its label is not a coin toss.
pub(super) const LABEL_MARGIN_S: f64 = 10.0;
/// A silent device skips its turns for this long, simulated seconds (uniform) ...
pub(super) const SILENT_S: (f64, f64) = (60.0, 600.0);
/// ... and for at least this many reading intervals, so a gap shows whatever the schedule.
pub(super) const SILENT_MIN_INTERVALS: f64 = 2.5;
/// Bounds on the simulated seconds between two readings of a customer: a million readings a
/// second per customer, or one in 30 years; beyond them the clock arithmetic loses meaning.
pub(super) const MIN_INTERVAL_S: f64 = 1e-6;
/// See [`MIN_INTERVAL_S`].
pub(super) const MAX_INTERVAL_S: f64 = 1e9;
/// A `too_large` fault is this big: just over the default `validation.max_message_bytes`.
pub(super) const TOO_LARGE_BYTES: usize = 66_000;
