/// @file
/// The API's create rate limits, for ClientOptions::create_requests_per_minute, and SharedCreatePace,
/// the create rate a fleet of processes on one account shares (ClientOptions::shared_create_pace).
#pragma once

#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>

#include <boost/asio/awaitable.hpp>

#include <array>
#include <chrono>
#include <optional>

namespace perplexity {

/// Creates per minute allowed at each usage tier 0..5 (see the API's rate limit page). Gets (6000 a
/// minute) and lists (3000) are rarely the limit.
inline constexpr std::array<unsigned, 6> create_rate_by_tier = {5, 10, 20, 40, 60, 100};

/// The create rate of a usage tier (0..5); tiers above 5 get tier 5's rate.
constexpr unsigned create_rate_for_tier(unsigned tier) noexcept {
    return create_rate_by_tier[tier < create_rate_by_tier.size() ? tier : create_rate_by_tier.size() - 1];
}

/// The create rate of an account, shared by every process that creates jobs on it: the API's limit is
/// the account's, so N processes that each pace themselves to it send N times too many creates. Each
/// create (first attempt and retries alike) takes the next slot of the whole fleet, and a 429 seen by
/// one process pauses the creates of all of them. `PostgresLedger::create_pace` makes one that lives in
/// the fleet's database.
///
/// Contract: `reserve` takes a slot atomically (no two processes get the same one) and returns how long
/// from now the caller waits before sending; `pause` makes every later slot start no earlier than
/// `pause` from now. Failures are `ErrorKind::ledger` Errors naming what failed. A Client calls them
/// on its executor; they must resume it there.
class SharedCreatePace {
  public:
    virtual ~SharedCreatePace() = default;
    /// Takes the fleet's next create slot; how long to wait from now before sending the create.
    virtual boost::asio::awaitable<expected<std::chrono::milliseconds, Error>> reserve() = 0;
    /// No create of the fleet goes before `pause` from now (a 429 asked for it).
    virtual boost::asio::awaitable<std::optional<Error>> pause(std::chrono::milliseconds pause) = 0;
};

}  // namespace perplexity
