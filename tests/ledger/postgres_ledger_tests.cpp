// PostgresLedger against a real PostgreSQL server (tests/postgres/cluster starts a scratch one): its
// tables and their version, the connection strings it refuses and how it words the refusal, leases
// and takeover between replicas, claims that race, the fleet's create pace, and a database that
// restarts or stays away.
#include "ledger_test_support.hpp"
#include "postgres_test_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <latch>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace postgres_test;
using ledger_test::intent;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

/// Opening, expected to fail: its Error.
px::Error open_failure(Runner& runner, const std::string& conninfo, px::PostgresLedgerOptions options = {}) {
    auto opened =
        runner.wait(px::PostgresLedger::open(runner.io().get_executor(), conninfo, std::move(options)));
    REQUIRE_FALSE(opened.has_value());
    return opened.error();
}

px::EntryId add(Runner& runner, px::PostgresLedger& ledger, const std::string& label) {
    auto id = runner.wait(ledger.add(intent(label, 0)));
    REQUIRE(id.has_value());
    return *id;
}

std::vector<px::EntryId> claimed(Runner& runner, px::PostgresLedger& ledger) {
    auto entries = runner.wait(ledger.claim({}));
    REQUIRE(entries.has_value());
    std::vector<px::EntryId> ids;
    for (const auto& entry : *entries) {
        ids.push_back(entry.id);
    }
    return ids;
}

/// Ends the lease of a replica that died (its ledger is gone, so nothing renews it), as if long ago.
void expire_lease(const std::string& replica) {
    execute("UPDATE perplexity_replicas SET lease_until = now() - interval '1 second' WHERE name = '" +
            replica + "'");
}

/// Runs the cluster script on the test's server (restart, down, up).
void cluster(const std::string& command) {
    const std::string script = required_environment("PERPLEXITY_PG_CLUSTER");
    const std::string directory = required_environment("PERPLEXITY_PG_DIR");
    const std::string line = "'" + script + "' " + command + " '" + directory + "' >/dev/null 2>&1";
    REQUIRE(std::system(line.c_str()) == 0);
}

/// Waits up to `limit` for `condition`, checking every 20 ms; whether it came true.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) {
            return false;
        }
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

}  // namespace

TEST_CASE("open creates the tables at schema version 1, and opens them again") {
    drop_tables();
    Runner runner;
    auto first = open_ledger(runner, {.replica = "a"});
    CHECK(query_value("SELECT version FROM perplexity_schema") == "1");
    const px::EntryId id = add(runner, *first, "kept");
    runner.wait(first->close());
    auto second = open_ledger(runner, {.replica = "a"});
    auto found = runner.wait(second->find({.id = id}));
    REQUIRE(found.has_value());
    REQUIRE(found->size() == 1);
    CHECK(found->front().label == "kept");
    runner.wait(second->close());
}

TEST_CASE("a schema from a newer release, or damaged tables, are refused with a clear Error") {
    drop_tables();
    Runner runner;
    runner.wait(open_ledger(runner, {.replica = "a"})->close());
    execute("UPDATE perplexity_schema SET version = 2");
    const px::Error newer = open_failure(runner, socket_conninfo(), {.replica = "b"});
    CHECK(newer.kind == px::ErrorKind::ledger);
    CHECK(contains(newer.message, "schema version 2"));
    CHECK(contains(newer.message, "newer perplexity-async"));
    // Nothing was changed: the version is still the newer one.
    CHECK(query_value("SELECT version FROM perplexity_schema") == "2");

    execute("DELETE FROM perplexity_schema");
    CHECK(contains(open_failure(runner, socket_conninfo(), {.replica = "b"}).message, "damaged"));
    execute("INSERT INTO perplexity_schema VALUES (1); DROP TABLE perplexity_pace");
    CHECK(contains(open_failure(runner, socket_conninfo(), {.replica = "b"}).message, "table is missing"));
}

TEST_CASE("bad connection strings and unreachable databases are Errors that never show the password") {
    Runner runner;
    SUBCASE("malformed, with a password in it") {
        const px::Error error = open_failure(runner, "host=127.0.0.1 password=s3cret-word =oops");
        CHECK(error.kind == px::ErrorKind::ledger);
        CHECK(contains(error.message, "cannot be parsed"));
        CHECK_FALSE(contains(error.message, "s3cret-word"));
    }
    SUBCASE("nothing listens at the address") {
        const px::Error error = open_failure(
            runner, "postgresql://perplexity:s3cret-word@127.0.0.1:1/perplexity?connect_timeout=2");
        CHECK(error.kind == px::ErrorKind::ledger);
        CHECK(contains(error.message, "host=127.0.0.1 port=1 dbname=perplexity user=perplexity"));
        CHECK(contains(error.message, "could not connect"));
        CHECK_FALSE(contains(error.message, "s3cret-word"));
    }
    SUBCASE("wrong credentials") {
        const std::string url = "postgresql://perplexity:not-the-password@127.0.0.1:" +
                                required_environment("PERPLEXITY_PG_PORT") + "/perplexity";
        const px::Error error = open_failure(runner, url);
        CHECK(error.kind == px::ErrorKind::ledger);
        CHECK(contains(error.message, "password authentication failed"));
        CHECK_FALSE(contains(error.message, "not-the-password"));
    }
    SUBCASE("the right password over TCP works") {
        drop_tables();
        auto ledger = open_ledger(runner, {.replica = "tcp"}, required_environment("PERPLEXITY_PG_URL"));
        CHECK(add(runner, *ledger, "over-tcp") >= 1);
        runner.wait(ledger->close());
    }
}

TEST_CASE("a replica's entries stay its own while its lease runs, and go to another once it expired") {
    drop_tables();
    Runner runner;
    auto a = open_ledger(runner, {.replica = "a", .lease = 600ms});
    auto b = open_ledger(runner, {.replica = "b"});
    const px::EntryId first = add(runner, *a, "first");
    const px::EntryId second = add(runner, *a, "second");
    CHECK(claimed(runner, *b).empty());
    CHECK(claimed(runner, *a) == std::vector<px::EntryId>{first, second});

    // a cannot renew (as if the database were out of its reach) until its lease runs out.
    LeaseBlocker blocked("a");
    REQUIRE(blocked.wait_until_expired(5s));
    CHECK(claimed(runner, *b) == std::vector<px::EntryId>{first, second});
    blocked.release();
    CHECK(claimed(runner, *a).empty());

    // a may no longer record anything for them; b may.
    const px::LedgerUpdate done{.state = px::EntryState::completed, .result = "{}", .at = ledger_test::at(1)};
    const std::optional<px::Error> refused = runner.wait(a->update(first, done));
    REQUIRE(refused.has_value());
    CHECK(refused->kind == px::ErrorKind::taken_over);
    CHECK(contains(refused->message, "held by replica \"b\""));
    CHECK(a->holding(first) == px::EntryHold::taken);
    CHECK_FALSE(runner.wait(b->update(first, done)).has_value());
    CHECK(query_value("SELECT state || ' ' || holder FROM perplexity_entries WHERE id = " +
                      std::to_string(first)) == "completed b");
    runner.wait(a->close());
    runner.wait(b->close());
}

TEST_CASE("a lease not renewed in time makes holding unsure, and a renewal says held or taken again") {
    drop_tables();
    Runner runner;
    auto a = open_ledger(runner, {.replica = "a", .lease = 600ms});
    auto b = open_ledger(runner, {.replica = "b", .lease = 600ms});
    const px::EntryId kept = add(runner, *a, "kept");
    CHECK(a->holding(kept) == px::EntryHold::held);

    // a's renewals wait behind a lock (as if the database were out of its reach): a's own clock tells
    // it its lease may have run out, before the database's does.
    std::optional<LeaseBlocker> blocked(std::in_place, "a");
    CHECK(eventually([&] { return a->holding(kept) == px::EntryHold::unsure; }, 3000ms));
    REQUIRE(blocked->wait_until_expired(5s));
    CHECK(a->holding(kept) == px::EntryHold::unsure);
    // Nobody took it: the renewal let through confirms the lease again.
    blocked.reset();
    CHECK(eventually([&] { return a->holding(kept) == px::EntryHold::held; }, 3000ms));

    // Once more, and this time b takes it over while a's lease is out.
    const px::EntryId taken = add(runner, *a, "taken");
    blocked.emplace("a");
    REQUIRE(blocked->wait_until_expired(5s));
    CHECK(claimed(runner, *b) == std::vector<px::EntryId>{kept, taken});
    CHECK(a->holding(taken) == px::EntryHold::unsure);  // a has not heard yet
    blocked.reset();
    // a's renewal, let through now, finds both gone; they are b's.
    CHECK(eventually([&] { return a->holding(taken) == px::EntryHold::taken; }, 3000ms));
    CHECK(a->holding(kept) == px::EntryHold::taken);
    CHECK(b->holding(taken) == px::EntryHold::held);
    runner.wait(a->close());
    runner.wait(b->close());
}

TEST_CASE("replicas claiming at the same time never get the same entry") {
    drop_tables();
    constexpr int entries = 300;
    {
        Runner runner;
        auto dead = open_ledger(runner, {.replica = "dead"});
        for (int i = 0; i < entries; ++i) {
            add(runner, *dead, "entry-" + std::to_string(i));
        }
        // It dies here: nothing renews its lease any more.
    }
    expire_lease("dead");
    // Three replicas, each on a thread of its own, claim in rounds until nothing is left. None closes
    // (which would end its lease and free its entries for the others) before all are done claiming.
    std::latch claimed_all(3);
    std::vector<std::future<std::vector<px::EntryId>>> claims;
    for (const char* name : {"r1", "r2", "r3"}) {
        claims.push_back(std::async(std::launch::async, [name, &claimed_all] {
            Runner own;
            auto ledger = open_ledger(own, {.replica = name});
            std::vector<px::EntryId> mine;
            for (int round = 0; round < 20; ++round) {
                auto batch = own.wait(ledger->claim({.label = std::nullopt}));
                if (batch) {
                    for (const auto& entry : *batch) {
                        mine.push_back(entry.id);
                    }
                }
            }
            claimed_all.arrive_and_wait();
            own.wait(ledger->close());
            return mine;
        }));
    }
    std::multiset<px::EntryId> all;
    std::vector<std::set<px::EntryId>> per_replica;
    for (auto& claim : claims) {
        const auto ids = claim.get();
        per_replica.emplace_back(ids.begin(), ids.end());
    }
    for (const auto& ids : per_replica) {
        all.insert(ids.begin(), ids.end());
    }
    // Each replica claims its own again in every round; across replicas no entry appears twice.
    CHECK(all.size() == entries);
    CHECK(std::set<px::EntryId>(all.begin(), all.end()).size() == entries);
}

TEST_CASE("a restarted replica of the same name waits out its old lease and takes its entries back") {
    drop_tables();
    px::EntryId id = 0;
    {
        Runner runner;
        auto old = open_ledger(runner, {.replica = "same", .lease = 900ms});
        id = add(runner, *old, "left-behind");
        // The process dies: no close, the lease is not ended.
    }
    Runner runner;
    const auto opening = std::chrono::steady_clock::now();
    auto restarted = open_ledger(runner, {.replica = "same", .lease = 900ms});
    // It waited for the old lease (at most 900 ms from the old one's last renewal).
    CHECK(std::chrono::steady_clock::now() - opening < 3s);
    CHECK(claimed(runner, *restarted) == std::vector<px::EntryId>{id});
    runner.wait(restarted->close());
}

TEST_CASE("a name held by a live replica is refused") {
    drop_tables();
    Runner runner;
    auto live = open_ledger(runner, {.replica = "twin", .lease = 600ms});
    const px::Error error = open_failure(runner, socket_conninfo(), {.replica = "twin", .lease = 600ms});
    CHECK(error.kind == px::ErrorKind::ledger);
    CHECK(contains(error.message, "another live process holds that name"));
    runner.wait(live->close());
}

TEST_CASE("the create pace spaces the fleet's slots by the rate, and a pause moves them all") {
    drop_tables();
    Runner runner;
    auto a = open_ledger(runner, {.replica = "a", .account = "acct"});
    auto b = open_ledger(runner, {.replica = "b", .account = "acct"});
    auto pace_a = a->create_pace(600);  // one slot per 100 ms
    auto pace_b = b->create_pace(600);
    // Slots taken by both replicas in turn: each is 100 ms after the one before, whoever took it.
    std::vector<std::chrono::steady_clock::time_point> slots;
    for (int i = 0; i < 10; ++i) {
        auto& pace = i % 2 == 0 ? pace_a : pace_b;
        auto wait = runner.wait(pace->reserve());
        REQUIRE(wait.has_value());
        slots.push_back(std::chrono::steady_clock::now() + *wait);
    }
    for (std::size_t i = 1; i < slots.size(); ++i) {
        // The database's clock and this one agree to within the round trip of a statement.
        CHECK(slots[i] - slots[i - 1] >= 85ms);
        CHECK(slots[i] - slots[i - 1] <= 115ms);
    }
    REQUIRE_FALSE(runner.wait(pace_a->pause(2000ms)).has_value());
    auto after_pause = runner.wait(pace_b->reserve());
    REQUIRE(after_pause.has_value());
    CHECK(*after_pause >= 1900ms);
    // Another account is not paced by this one.
    auto other = open_ledger(runner, {.replica = "c", .account = "other"});
    auto free = runner.wait(other->create_pace(600)->reserve());
    REQUIRE(free.has_value());
    CHECK(*free == 0ms);
    runner.wait(a->close());
    runner.wait(b->close());
    runner.wait(other->close());
}

TEST_CASE("a database restart is ridden out; one that stays away is a clear Error, then it recovers") {
    drop_tables();
    Runner runner;
    auto ledger = open_ledger(runner, {.replica = "a", .reconnect_for = 20s});
    const px::EntryId before = add(runner, *ledger, "before");
    cluster("restart");
    const px::EntryId after = add(runner, *ledger, "after");
    CHECK(after > before);

    auto short_patience = open_ledger(runner, {.replica = "b", .reconnect_for = 1500ms});
    auto stopping = open_ledger(runner, {.replica = "c", .reconnect_for = 60s});
    cluster("down");
    auto refused = runner.wait(short_patience->add(intent("while-down", 0)));
    // Calls behind one that gave up try once each, until the database answers again.
    auto refused_at_once = runner.wait(short_patience->add(intent("also-while-down", 0)));
    REQUIRE_FALSE(refused_at_once.has_value());
    CHECK(contains(refused_at_once.error().message, "tried once"));
    // A shutdown does not wait for the database to end its lease: one attempt, not a minute of them.
    const auto closing = std::chrono::steady_clock::now();
    const std::optional<px::Error> not_ended = runner.wait(stopping->close());
    CHECK(std::chrono::steady_clock::now() - closing < 30s);
    REQUIRE(not_ended.has_value());
    CHECK(contains(not_ended->message, "not retried"));
    cluster("up");
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().kind == px::ErrorKind::ledger);
    CHECK(contains(refused.error().message, "gave up after retrying for 1500 ms"));
    // Nothing half-done: no entry "while-down", and the next call works.
    CHECK(query_value("SELECT count(*) FROM perplexity_entries WHERE label = 'while-down'") == "0");
    CHECK(add(runner, *short_patience, "back") > after);
    runner.wait(ledger->close());
    runner.wait(short_patience->close());
}

TEST_CASE("claim honours the query's filters, and claims only unfinished entries") {
    drop_tables();
    Runner runner;
    px::EntryId first = 0;
    px::EntryId second = 0;
    {
        auto a = open_ledger(runner, {.replica = "a"});
        first = add(runner, *a, "one");
        second = add(runner, *a, "two");
        const px::EntryId done = add(runner, *a, "done");
        const px::LedgerUpdate running{
            .state = px::EntryState::running, .job_id = "job-2", .at = ledger_test::at(1)};
        const px::LedgerUpdate completed{
            .state = px::EntryState::completed, .result = "{}", .at = ledger_test::at(1)};
        REQUIRE_FALSE(runner.wait(a->update(second, running)).has_value());
        REQUIRE_FALSE(runner.wait(a->update(done, completed)).has_value());
        // a dies here: nothing renews its lease any more.
    }
    expire_lease("a");
    auto b = open_ledger(runner, {.replica = "b"});
    const auto ids = [&](px::LedgerQuery query) {
        auto entries = runner.wait(b->claim(std::move(query)));
        REQUIRE(entries.has_value());
        std::vector<px::EntryId> found;
        for (const auto& entry : *entries) {
            found.push_back(entry.id);
        }
        return found;
    };
    CHECK(ids({.states = {px::EntryState::completed}}).empty());
    CHECK(ids({.job_id = "job-x"}).empty());
    CHECK(ids({.label = "two"}) == std::vector<px::EntryId>{second});
    CHECK(ids({.job_id = "job-2"}) == std::vector<px::EntryId>{second});
    CHECK(ids({.states = {px::EntryState::pending, px::EntryState::completed}}) ==
          std::vector<px::EntryId>{first});
    CHECK(query_value("SELECT string_agg(holder, ',' ORDER BY id) FROM perplexity_entries") == "b,b,a");
    runner.wait(b->close());
}
