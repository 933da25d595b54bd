//! The heart-rate simulator behind the Generator: a fleet of customers, each with a resting
//! baseline, whose heart rate wanders smoothly around it with sensor noise.
//!
//! Pure and seeded: the same seed gives the same sequence of (customer, heart rate) pairs, which
//! is what tests and benchmarks rely on. Timestamps are not part of that sequence; the actor
//! stamps readings with the wall clock when it sends them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Mean resting heart rate of the simulated population, bpm (adult resting range 60-100).
const POPULATION_MEAN_BPM: f64 = 70.0;
/// Spread of resting heart rate across the population, bpm.
const POPULATION_SD_BPM: f64 = 9.0;
/// How strongly a customer's rate is pulled back to the baseline each reading (AR(1) weight).
const MEAN_REVERSION: f64 = 0.1;
/// Standard deviation of the smooth drift per reading, bpm.
const DRIFT_SD_BPM: f64 = 2.0;
/// Standard deviation of the sensor noise on each reading, bpm.
const SENSOR_NOISE_SD_BPM: f64 = 1.0;

/// One simulated customer.
#[derive(Debug, Clone)]
struct Customer {
    baseline: f64,
    current: f64,
}

/// A generated reading before it gets a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedReading {
    pub customer_id: String,
    pub heart_rate: i16,
}

/// The customer id of customer number `n`: `CUST-00042`.
pub fn customer_id(n: usize) -> String {
    format!("CUST-{n:05}")
}

/// A seeded fleet of customers visited in turn.
pub struct Simulator {
    rng: ChaCha8Rng,
    customers: Vec<Customer>,
    next: usize,
    drift: Normal<f64>,
    noise: Normal<f64>,
}

impl Simulator {
    /// A fleet of `customers` (at least one) seeded with `seed`.
    pub fn new(customers: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // The constants are finite and positive, so these constructors cannot fail.
        let population = Normal::new(POPULATION_MEAN_BPM, POPULATION_SD_BPM)
            .unwrap_or_else(|_| unreachable!("valid normal parameters"));
        let customers = (0..customers.max(1))
            .map(|_| {
                let baseline = population.sample(&mut rng).clamp(48.0, 98.0);
                Customer {
                    baseline,
                    current: baseline + rng.gen_range(-3.0..3.0),
                }
            })
            .collect();
        Simulator {
            rng,
            customers,
            next: 0,
            drift: Normal::new(0.0, DRIFT_SD_BPM)
                .unwrap_or_else(|_| unreachable!("valid normal parameters")),
            noise: Normal::new(0.0, SENSOR_NOISE_SD_BPM)
                .unwrap_or_else(|_| unreachable!("valid normal parameters")),
        }
    }

    /// The next reading: customers take turns, so each gets `rate / customers` readings a second.
    pub fn next_reading(&mut self) -> SimulatedReading {
        let index = self.next;
        self.next = (self.next + 1) % self.customers.len();
        let drift = self.drift.sample(&mut self.rng);
        let noise = self.noise.sample(&mut self.rng);
        let customer = &mut self.customers[index];
        customer.current += MEAN_REVERSION * (customer.baseline - customer.current) + drift;
        let heart_rate = (customer.current + noise).round().clamp(30.0, 220.0) as i16;
        SimulatedReading {
            customer_id: customer_id(index),
            heart_rate,
        }
    }

    pub fn customers(&self) -> usize {
        self.customers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let a: Vec<_> = {
            let mut s = Simulator::new(50, 42);
            (0..1000).map(|_| s.next_reading()).collect()
        };
        let mut s = Simulator::new(50, 42);
        let b: Vec<_> = (0..1000).map(|_| s.next_reading()).collect();
        assert_eq!(a, b);
        let mut other = Simulator::new(50, 43);
        let c: Vec<_> = (0..1000).map(|_| other.next_reading()).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn readings_stay_plausible_and_customers_take_turns() {
        let mut s = Simulator::new(3, 1);
        let ids: Vec<_> = (0..6).map(|_| s.next_reading().customer_id).collect();
        assert_eq!(ids, ["CUST-00000", "CUST-00001", "CUST-00002"].repeat(2));
        for _ in 0..100_000 {
            let r = s.next_reading();
            assert!((20..=250).contains(&r.heart_rate), "{r:?}");
        }
    }
}
