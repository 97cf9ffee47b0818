// The API's create rate limit (SimulatorOptions::creates_per_minute) as a leaky bucket, kept free of any
// clock and socket: the time is always an argument, so it is tested as a table of arrivals.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

namespace perplexity_sim::detail {

// One API key's bucket. Every admitted create pours one create into it, and it drains continuously at the
// rate; a create that would make it hold more than `capacity` creates is refused and changes nothing, so
// refusals never push the next admission further out. With a capacity of 1 admitted creates are at least
// one interval (a minute divided by the rate) apart; a capacity of N lets N of them through at once after
// a quiet spell, and never more than N + t × rate in any span of time t.
//
// Kept as the time the bucket will have drained empty: it holds (empty_at - now) / interval creates, and
// one more fits once that is at most capacity - 1.
class CreateBucket {
  public:
    using Clock = std::chrono::steady_clock;

    // Largest accepted capacity, which keeps every time computed here far from overflowing.
    static constexpr unsigned max_capacity = 1'000'000;

    // Throws std::invalid_argument for a rate or capacity of 0, or a capacity above max_capacity.
    static void check(unsigned per_minute, unsigned capacity) {
        if (per_minute == 0 || capacity == 0 || capacity > max_capacity) {
            throw std::invalid_argument("a create rate limit needs a positive rate and a burst of 1 to " +
                                        std::to_string(max_capacity));
        }
    }

    // Empty. Throws as check() does.
    CreateBucket(unsigned per_minute, unsigned capacity) {
        check(per_minute, capacity);
        interval_ = std::chrono::duration_cast<Clock::duration>(std::chrono::minutes(1)) /
                    static_cast<Clock::duration::rep>(per_minute);
        headroom_ = interval_ * static_cast<Clock::duration::rep>(capacity - 1);
    }

    // A create at `now`: nothing when it is admitted (the bucket then holds one create more), else it is
    // refused, the bucket stays as it was, and the answer is how long until one create fits (positive).
    // Times must not go backwards.
    std::optional<Clock::duration> admit(Clock::time_point now) {
        const Clock::time_point fits_at = empty_at_ - headroom_;
        if (now < fits_at) {
            return fits_at - now;
        }
        empty_at_ = std::max(empty_at_, now) + interval_;
        return std::nullopt;
    }

    // How long one create takes to drain: a minute divided by the rate.
    Clock::duration interval() const { return interval_; }

  private:
    Clock::duration interval_{};
    Clock::duration headroom_{};    // (capacity - 1) intervals
    Clock::time_point empty_at_{};  // in the past while the bucket is empty
};

}  // namespace perplexity_sim::detail
