/// @file
/// Backoff, the one way this library spaces repeated attempts: RetryPolicy's waits between retries
/// and PollPolicy's sleeps between polls are both a Backoff.
///
/// Pure functions of their arguments: no clock, no I/O, safe from any thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>

namespace perplexity {

/// A capped exponential delay with jitter: delay number n (1 for the first) is
/// `initial * growth^(n-1)`, at most `max`, then scaled by a random factor in [1 - jitter, 1] so that
/// many clients (or many jobs) do not act in lockstep. See `backoff_delay`. The defaults here are
/// RetryPolicy's; PollPolicy::backoff has its own.
struct Backoff {
    /// The first delay. Default 500 ms.
    std::chrono::milliseconds initial = std::chrono::milliseconds(500);
    /// Each further delay is this many times longer (below 1 counts as 1)... Default 2.
    double growth = 2.0;
    /// ...up to this. Default 8 s.
    std::chrono::milliseconds max = std::chrono::seconds(8);
    /// Each delay is scaled by a random factor in [1 - jitter, 1]; clamped to [0, 1], 0 turns jitter
    /// off. Default 0.25.
    double jitter = 0.25;

    /// Member-wise equality.
    friend bool operator==(const Backoff&, const Backoff&) = default;
};

/// Scales `delay` by a factor in [1 - jitter, 1] chosen by `random_unit` in [0, 1); both are clamped to
/// [0, 1] first.
inline std::chrono::milliseconds apply_jitter(std::chrono::milliseconds delay, double jitter,
                                              double random_unit) {
    jitter = std::clamp(jitter, 0.0, 1.0);
    random_unit = std::clamp(random_unit, 0.0, 1.0);
    const double factor = 1.0 - jitter * random_unit;
    return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(
        std::llround(static_cast<double>(delay.count()) * factor)));
}

/// `initial * growth^(n-1)` capped at `cap`, without overflowing for large n.
inline std::chrono::milliseconds capped_exponential(std::chrono::milliseconds initial, double growth,
                                                    std::chrono::milliseconds cap, unsigned n) {
    double delay = static_cast<double>(initial.count());
    for (unsigned i = 1; i < n && delay < static_cast<double>(cap.count()); ++i) {
        delay *= std::max(growth, 1.0);
    }
    return std::min(cap, std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(delay)));
}

/// Delay number `n` (1 for the first) of `backoff`: `initial * growth^(n-1)` capped at `max`, then
/// jittered by `random_unit` in [0, 1) (0 gives the full delay).
inline std::chrono::milliseconds backoff_delay(const Backoff& backoff, unsigned n, double random_unit) {
    return apply_jitter(capped_exponential(backoff.initial, backoff.growth, backoff.max, n), backoff.jitter,
                        random_unit);
}

}  // namespace perplexity
