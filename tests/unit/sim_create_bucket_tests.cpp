// perplexity-sim's create rate limit (simulator/perplexity_sim/create_bucket.hpp) as tables of arrival
// times: no clock, no socket, no sleeping.
#include <perplexity_sim/create_bucket.hpp>
#include <perplexity_sim/options.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <vector>

namespace {

using perplexity_sim::detail::CreateBucket;
using Clock = CreateBucket::Clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using namespace std::chrono_literals;

// An arbitrary start, far from the clock's epoch as a real steady clock is.
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(100);

Clock::time_point at(milliseconds offset) {
    return t0 + offset;
}

// Offers a create at each time and answers which were admitted.
std::vector<bool> offer(CreateBucket& bucket, const std::vector<Clock::time_point>& times) {
    std::vector<bool> admitted;
    for (const auto time : times) {
        admitted.push_back(!bucket.admit(time).has_value());
    }
    return admitted;
}

}  // namespace

TEST_SUITE("perplexity-sim create bucket") {
    TEST_CASE("the interval is a minute divided by the rate") {
        CHECK(CreateBucket(120, 1).interval() == 500ms);
        CHECK(CreateBucket(600, 2).interval() == 100ms);
        // The contract's tiers: 5, 10, 20, 40, 60, 100 creates a minute.
        CHECK(CreateBucket(perplexity_sim::creates_per_minute_by_tier[0], 2).interval() == 12s);
        CHECK(CreateBucket(perplexity_sim::creates_per_minute_by_tier[1], 2).interval() == 6s);
        CHECK(CreateBucket(perplexity_sim::creates_per_minute_by_tier[5], 2).interval() == 600ms);
    }

    TEST_CASE("a rate or a capacity of 0, or a capacity above the maximum, is refused") {
        CHECK_THROWS_AS(CreateBucket(0, 2), std::invalid_argument);
        CHECK_THROWS_AS(CreateBucket(60, 0), std::invalid_argument);
        CHECK_THROWS_AS(CreateBucket(60, CreateBucket::max_capacity + 1), std::invalid_argument);
        CHECK_NOTHROW(CreateBucket(60, CreateBucket::max_capacity));
        CHECK_NOTHROW(CreateBucket::check(1, 1));
    }

    TEST_CASE("capacity 1: one create per interval, and the hint is the time until the next fits") {
        CreateBucket bucket(120, 1);
        CHECK_FALSE(bucket.admit(at(0ms)).has_value());
        CHECK(bucket.admit(at(0ms)) == std::optional<Clock::duration>(500ms));
        CHECK(bucket.admit(at(200ms)) == std::optional<Clock::duration>(300ms));
        CHECK(bucket.admit(at(500ms) - 1ns) == std::optional<Clock::duration>(1ns));
        CHECK_FALSE(bucket.admit(at(500ms)).has_value());
        CHECK(bucket.admit(at(500ms)) == std::optional<Clock::duration>(500ms));
    }

    TEST_CASE("a refused create does not fill the bucket") {
        CreateBucket bucket(60, 1);
        CHECK_FALSE(bucket.admit(at(0ms)).has_value());
        // Were refusals poured in, each would push the next admission a further second out.
        for (int i = 1; i <= 50; ++i) {
            CHECK(bucket.admit(at(milliseconds(i))) ==
                  std::optional<Clock::duration>(milliseconds(1000 - i)));
        }
        CHECK_FALSE(bucket.admit(at(1000ms)).has_value());
    }

    TEST_CASE("waiting exactly as long as the hint says is admitted") {
        CreateBucket bucket(7, 3);  // an interval that is no whole number of milliseconds
        Clock::time_point now = at(0ms);
        int admitted = 0;
        for (int i = 0; i < 20; ++i) {
            if (const auto wait = bucket.admit(now)) {
                CHECK(*wait > Clock::duration::zero());
                now += *wait;
                CHECK_FALSE(bucket.admit(now).has_value());
            }
            ++admitted;
        }
        CHECK(admitted == 20);
        // Three at once, then one every interval.
        CHECK(now - at(0ms) == 17 * bucket.interval());
    }

    TEST_CASE("capacity N: N creates at once after a quiet spell, then the rate") {
        CreateBucket bucket(600, 3);
        CHECK(offer(bucket, {at(0ms), at(0ms), at(0ms), at(0ms)}) ==
              std::vector<bool>{true, true, true, false});
        CHECK(bucket.admit(at(0ms)) == std::optional<Clock::duration>(100ms));
        CHECK(offer(bucket, {at(100ms), at(100ms)}) == std::vector<bool>{true, false});
        // After a quiet spell of any length the bucket is empty again: three, not more.
        CHECK(offer(bucket, {at(60s), at(60s), at(60s), at(60s)}) ==
              std::vector<bool>{true, true, true, false});
    }

    TEST_CASE("a greedy client gets the capacity plus the rate, never more") {
        CreateBucket bucket(600, 2);
        std::size_t admitted = 0;
        for (int ms = 0; ms < 10'000; ++ms) {
            admitted += bucket.admit(at(milliseconds(ms))).has_value() ? 0 : 1;
        }
        // At 0 and 1 ms (the capacity of 2), then at 100, 200, ..., 9900 ms.
        CHECK(admitted == 2 + 99);
    }

    TEST_CASE("why the default capacity is 2: a client pacing at exactly the rate, with jitter") {
        // 120 a minute paced at 500 ms, each create arriving up to 2 ms early or late on the network.
        const std::vector<int> jitter{0, 2, -1, 1, -2, 0, 2, -2, 1, -1};
        std::vector<Clock::time_point> arrivals;
        for (std::size_t i = 0; i < jitter.size(); ++i) {
            arrivals.push_back(at(milliseconds(500 * static_cast<int>(i) + jitter[i])));
        }
        CreateBucket strict(120, 1);
        const auto strict_admitted = offer(strict, arrivals);
        CHECK(std::count(strict_admitted.begin(), strict_admitted.end(), false) > 0);

        CreateBucket tolerant(120, 2);
        CHECK(offer(tolerant, arrivals) == std::vector<bool>(arrivals.size(), true));
        // ...and still refuses a client that gets more than one create ahead of the rate.
        CreateBucket fast(120, 2);
        CHECK(offer(fast, {at(0ms), at(300ms), at(600ms), at(900ms)}) ==
              std::vector<bool>{true, true, true, false});
    }
}
