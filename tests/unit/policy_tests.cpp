// The arithmetic of retries, polling, deadlines and pacing: pure functions, no sockets, no sleeping.
#include <perplexity/detail/pacer.hpp>
#include <perplexity/detail/response.hpp>
#include <perplexity/idempotency.hpp>
#include <perplexity/pacing.hpp>
#include <perplexity/poll.hpp>
#include <perplexity/retry.hpp>

#include <doctest/doctest.h>

#include <random>
#include <set>

namespace px = perplexity;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

TEST_SUITE("retry policy") {
    TEST_CASE("backoff grows exponentially up to its cap") {
        const px::Backoff backoff{.initial = 500ms, .growth = 2.0, .max = 8s, .jitter = 0};
        CHECK(px::backoff_delay(backoff, 1, 0.5) == 500ms);
        CHECK(px::backoff_delay(backoff, 2, 0.5) == 1000ms);
        CHECK(px::backoff_delay(backoff, 3, 0.5) == 2000ms);
        CHECK(px::backoff_delay(backoff, 5, 0.5) == 8000ms);
        CHECK(px::backoff_delay(backoff, 6, 0.5) == 8000ms);
        CHECK(px::backoff_delay(backoff, 1'000'000, 0.5) == 8000ms);
    }

    TEST_CASE("both policies keep their defaults, as one Backoff each") {
        CHECK(px::Backoff{} == px::Backoff{.initial = 500ms, .growth = 2.0, .max = 8s, .jitter = 0.25});
        CHECK(px::RetryPolicy{}.backoff ==
              px::Backoff{.initial = 500ms, .growth = 2.0, .max = 8s, .jitter = 0.25});
        CHECK(px::PollPolicy{}.backoff ==
              px::Backoff{.initial = 1s, .growth = 1.5, .max = 15s, .jitter = 0.2});
        // Each policy's delays are its Backoff's.
        const px::RetryPolicy retry{};
        const px::PollPolicy poll{};
        for (unsigned n : {1u, 2u, 7u}) {
            CHECK(px::retry_delay(retry, n, std::nullopt, 0.3) == px::backoff_delay(retry.backoff, n, 0.3));
            CHECK(px::poll_delay(poll, n, 0.3) == px::backoff_delay(poll.backoff, n, 0.3));
        }
    }

    TEST_CASE("jitter stays within [1 - jitter, 1] of the backoff and spreads it") {
        const px::Backoff backoff{.initial = 1000ms, .max = 1000ms, .jitter = 0.25};
        std::mt19937_64 random(42);
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        std::set<milliseconds::rep> seen;
        for (int i = 0; i < 1000; ++i) {
            const milliseconds delay = px::backoff_delay(backoff, 1, unit(random));
            CHECK(delay >= 750ms);
            CHECK(delay <= 1000ms);
            seen.insert(delay.count());
        }
        CHECK(seen.size() > 100);  // not in lockstep
        CHECK(px::backoff_delay(backoff, 1, 0.0) == 1000ms);
        CHECK(px::backoff_delay(backoff, 1, 1.0) == 750ms);
        CHECK(px::apply_jitter(1000ms, 7.0, 2.0) == 0ms);  // out-of-range inputs are clamped
    }

    TEST_CASE("retryable statuses and the server's verdict") {
        for (int status : {408, 409, 429, 500, 502, 503, 504, 599}) {
            CAPTURE(status);
            CHECK(px::is_retryable_status(status));
        }
        for (int status : {200, 400, 401, 403, 404, 422}) {
            CAPTURE(status);
            CHECK_FALSE(px::is_retryable_status(status));
        }
        CHECK(px::parse_should_retry("true") == true);
        CHECK(px::parse_should_retry("false") == false);
        CHECK_FALSE(px::parse_should_retry(""));
        CHECK_FALSE(px::parse_should_retry("yes"));
    }

    TEST_CASE("retry hints in every form") {
        const auto now = std::chrono::sys_days(std::chrono::year(2026) / 11 / 27) + 12h;
        CHECK(px::parse_retry_hint("1500", "", now) == 1500ms);
        CHECK(px::parse_retry_hint("250", "10", now) == 250ms);  // retry-after-ms wins
        CHECK(px::parse_retry_hint("", "3", now) == 3000ms);
        CHECK(px::parse_retry_hint("", " 7 ", now) == 7000ms);
        CHECK(px::parse_retry_hint("", "Fri, 27 Nov 2026 12:00:30 GMT", now) == 30000ms);
        CHECK(px::parse_retry_hint("", "Fri, 27 Nov 2026 11:00:00 GMT", now) == 0ms);  // in the past
        CHECK_FALSE(px::parse_retry_hint("", "", now));
        CHECK_FALSE(px::parse_retry_hint("-5", "", now));
        CHECK_FALSE(px::parse_retry_hint("soon", "later", now));
        CHECK_FALSE(px::parse_retry_hint("", "Fri, 31 Feb 2026 12:00:30 GMT", now));
        CHECK_FALSE(px::parse_retry_hint("", "Fri, 27 Nov 2026 25:00:30 GMT", now));
        CHECK_FALSE(px::parse_retry_hint("", "27 Nov 2026 12:00:30 GMT", now));
        CHECK(px::parse_retry_hint("", "99999999999999", now) > 24h);  // huge but no overflow
    }

    TEST_CASE("dates out of the usual range or out of shape, as a fuzzer found them") {
        const auto now = std::chrono::sys_days(std::chrono::year(2026) / 11 / 27) + 12h;
        // Far future and far past: beyond system_clock's nanosecond range, yet no overflow.
        const auto last_second = std::chrono::sys_days(std::chrono::year(9999) / 12 / 31) + 86399s;
        CHECK(px::parse_retry_hint("", "Fri, 31 Dec 9999 23:59:59 GMT", now) ==
              std::chrono::duration_cast<milliseconds>(last_second - std::chrono::sys_seconds(now)));
        CHECK(px::parse_retry_hint("", "Mon, 01 Jan 0001 00:00:00 GMT", now) == 0ms);
        // Separators, signs and spaces where digits belong are not a date.
        CHECK_FALSE(px::parse_retry_hint("", "Thu, 01 Jan2 02 600:00:30 GMT", now));
        CHECK_FALSE(px::parse_retry_hint("", "Fri, 27 Nov 2026 1 :00:30 GMT", now));
        CHECK_FALSE(px::parse_retry_hint("", "Fri, 27 Nov -026 12:00:30 GMT", now));
        CHECK_FALSE(px::parse_retry_hint("", "Fri, 27-Nov-2026 12:00:30 GMT", now));
    }

    TEST_CASE("hints are clamped to the policy, backoff used without one") {
        const px::RetryPolicy policy{
            .backoff = {.initial = 500ms, .jitter = 0}, .min_hint = 50ms, .max_hint = 60s};
        CHECK(px::retry_delay(policy, 1, 2000ms, 0.3) == 2000ms);
        CHECK(px::retry_delay(policy, 1, 0ms, 0.3) == 50ms);
        CHECK(px::retry_delay(policy, 1, 3600s, 0.3) == 60s);
        CHECK(px::retry_delay(policy, 2, std::nullopt, 0.3) == 1000ms);
    }
}

TEST_SUITE("poll policy") {
    TEST_CASE("poll delays grow to their cap, with jitter") {
        const px::PollPolicy policy{.backoff = {.initial = 1s, .growth = 1.5, .max = 15s, .jitter = 0.2}};
        CHECK(px::poll_delay(policy, 1, 0.0) == 1000ms);
        CHECK(px::poll_delay(policy, 2, 0.0) == 1500ms);
        CHECK(px::poll_delay(policy, 3, 0.0) == 2250ms);
        CHECK(px::poll_delay(policy, 50, 0.0) == 15s);
        CHECK(px::poll_delay(policy, 50, 1.0) == 12s);
        CHECK(px::poll_delay(policy, 1, 0.5) == 900ms);
    }

    TEST_CASE("a delay that fits before the deadline is kept") {
        CHECK(px::fit_to_deadline(2s, 60s, 500ms) == px::PlannedSleep{2s, false, false});
    }

    TEST_CASE("one last poll is fitted in just before the deadline") {
        CHECK(px::fit_to_deadline(10s, 4s, 500ms) == px::PlannedSleep{3500ms, true, false});
        CHECK(px::fit_to_deadline(10s, 300ms, 500ms) == px::PlannedSleep{0ms, true, false});
        CHECK(px::fit_to_deadline(3500ms, 4s, 500ms) == px::PlannedSleep{3500ms, true, false});
    }

    TEST_CASE("a passed deadline leaves no poll") {
        CHECK(px::fit_to_deadline(1s, 0ms, 500ms).deadline_reached);
        CHECK(px::fit_to_deadline(1s, -5ms, 500ms).deadline_reached);
    }
}

TEST_SUITE("pacing") {
    using Clock = std::chrono::steady_clock;

    TEST_CASE("creates are spaced evenly at the configured rate") {
        px::detail::Pacer pacer;
        pacer.set_rate(px::create_rate_for_tier(1));  // 10 a minute: one every 6 s
        const Clock::time_point start{};
        CHECK(pacer.reserve(start) == start);
        CHECK(pacer.reserve(start) == start + 6s);
        CHECK(pacer.reserve(start + 1s) == start + 12s);
        CHECK(pacer.next_slot(start + 100s) == start + 100s);  // idle time is not banked
        CHECK(pacer.reserve(start + 100s) == start + 100s);
        CHECK(pacer.reserve(start + 100s) == start + 106s);
    }

    TEST_CASE("without a rate nothing waits, but a pause holds everything") {
        px::detail::Pacer pacer;
        const Clock::time_point start{};
        CHECK(pacer.reserve(start) == start);
        CHECK(pacer.reserve(start) == start);
        pacer.pause_until(start + 2s);
        CHECK(pacer.reserve(start + 1s) == start + 2s);
        pacer.pause_until(start + 1s);  // a shorter pause does not shorten the current one
        CHECK(pacer.next_slot(start) == start + 2s);
        CHECK(pacer.reserve(start + 3s) == start + 3s);
    }

    TEST_CASE("tier values") {
        CHECK(px::create_rate_for_tier(0) == 5);
        CHECK(px::create_rate_for_tier(3) == 40);
        CHECK(px::create_rate_for_tier(5) == 100);
        CHECK(px::create_rate_for_tier(9) == 100);
    }
}

TEST_SUITE("idempotency keys") {
    TEST_CASE("redaction ends even for a key found inside its own mark") {
        std::string text = "the key e, then e again";
        px::detail::redact(text, "e");
        CHECK(text.find("e,") == std::string::npos);
        std::string marks = "[redacted]";
        px::detail::redact(marks, "[redacted]");
        CHECK(marks == "[redacted]");
    }

    TEST_CASE("make_idempotency_key: UUID v4 form, and no repeats") {
        std::set<std::string> keys;
        for (int i = 0; i < 1000; ++i) {
            const std::string key = px::make_idempotency_key();
            CAPTURE(key);
            REQUIRE(key.size() == 36);
            for (std::size_t at = 0; at < key.size(); ++at) {
                if (at == 8 || at == 13 || at == 18 || at == 23) {
                    CHECK(key[at] == '-');
                } else {
                    CHECK(((key[at] >= '0' && key[at] <= '9') || (key[at] >= 'a' && key[at] <= 'f')));
                }
            }
            CHECK(key[14] == '4');  // version 4
            CHECK(
                (key[19] == '8' || key[19] == '9' || key[19] == 'a' || key[19] == 'b'));  // RFC 4122 variant
            keys.insert(key);
        }
        CHECK(keys.size() == 1000);
    }
}
