// The Ledger contract, checked against every implementation alike: what a Client and `resume` rely on
// must not depend on which ledger a program chose.
#include "ledger_test_support.hpp"
#ifdef PERPLEXITY_TEST_POSTGRES
#include "postgres_test_support.hpp"
#endif

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using namespace ledger_test;

// The PostgreSQL test program compiles this file again with its own fixture (it needs a server).
#ifdef PERPLEXITY_TEST_POSTGRES
#define LEDGER_FIXTURES PostgresFixture
#else
#define LEDGER_FIXTURES MemoryFixture, SqliteFixture
#endif

namespace {

std::vector<px::EntryId> ids_of(const std::vector<px::LedgerEntry>& entries) {
    std::vector<px::EntryId> ids;
    for (const px::LedgerEntry& entry : entries) {
        ids.push_back(entry.id);
    }
    return ids;
}

template <typename Ledger>
std::vector<px::EntryId> found_ids(Ledger& ledger, const px::LedgerQuery& query) {
    auto found = ledger.find_now(query);
    if (!found) {
        FAIL(found.error());
    }
    return ids_of(*found);
}

template <typename Ledger>
px::EntryId added(Ledger& ledger, const px::LedgerIntent& intent) {
    auto id = ledger.add_now(intent);
    if (!id) {
        FAIL(id.error());
    }
    return *id;
}

}  // namespace

TEST_CASE_TEMPLATE("a ledger keeps an intent as a pending entry", Fixture, LEDGER_FIXTURES) {
    Fixture fixture;
    px::LedgerIntent sonar = intent("first", 0);
    sonar.request = std::string("{\"text\":\"caf\xc3\xa9 \\u0000\"}");
    const px::EntryId first = added(*fixture.ledger, sonar);
    const px::EntryId second = added(*fixture.ledger, intent("second", 5, px::LedgerApi::agent));
    CHECK(first >= 1);
    CHECK(second > first);

    auto found = fixture.ledger->find_now({});
    REQUIRE(found.has_value());
    REQUIRE(found->size() == 2);
    const px::LedgerEntry expected_first{.id = first,
                                         .api = px::LedgerApi::sonar,
                                         .state = px::EntryState::pending,
                                         .label = "first",
                                         .request = sonar.request,
                                         .idempotency_key = "key-first",
                                         .created_at = at(0),
                                         .updated_at = at(0)};
    CHECK((*found)[0] == expected_first);
    CHECK((*found)[1].api == px::LedgerApi::agent);
    CHECK((*found)[1].idempotency_key.empty());
    CHECK((*found)[1].label == "second");
}

TEST_CASE_TEMPLATE("an update changes only the members it sets", Fixture, LEDGER_FIXTURES) {
    Fixture fixture;
    const px::EntryId id = added(*fixture.ledger, intent("job", 0));
    const px::EntryId other = added(*fixture.ledger, intent("other", 1));

    REQUIRE_FALSE(fixture.ledger->update_now(
        id, {.state = px::EntryState::running, .job_id = "job-1", .status = "CREATED", .at = at(10)}));
    REQUIRE_FALSE(fixture.ledger->update_now(id, {.status = "IN_PROGRESS", .at = at(20), .durable = false}));
    REQUIRE_FALSE(
        fixture.ledger->update_now(id, {.error = "a deadline passed", .at = at(25), .durable = false}));
    auto found = fixture.ledger->find_now({.id = id});
    REQUIRE(found.has_value());
    REQUIRE(found->size() == 1);
    px::LedgerEntry entry = found->front();
    CHECK(entry.state == px::EntryState::running);
    CHECK(entry.job_id == "job-1");
    CHECK(entry.status == "IN_PROGRESS");
    CHECK(entry.error == "a deadline passed");
    CHECK(entry.result.empty());
    CHECK(entry.created_at == at(0));
    CHECK(entry.updated_at == at(25));

    // An empty string is a value, not an unset member: it clears the note.
    REQUIRE_FALSE(fixture.ledger->update_now(id, {.state = px::EntryState::completed,
                                                  .status = "COMPLETED",
                                                  .result = R"({"id":"job-1"})",
                                                  .error = "",
                                                  .at = at(30)}));
    entry = fixture.ledger->find_now({.id = id})->front();
    CHECK(entry.state == px::EntryState::completed);
    CHECK(entry.job_id == "job-1");
    CHECK(entry.result == R"({"id":"job-1"})");
    CHECK(entry.error.empty());

    const px::LedgerEntry untouched = fixture.ledger->find_now({.id = other})->front();
    CHECK(untouched.state == px::EntryState::pending);
    CHECK(untouched.updated_at == at(1));
}

TEST_CASE_TEMPLATE("an update of an unknown entry is a ledger Error", Fixture, LEDGER_FIXTURES) {
    Fixture fixture;
    const px::EntryId id = added(*fixture.ledger, intent("job", 0));
    for (const px::EntryId unknown : {px::EntryId{0}, id + 1, px::EntryId{-3}}) {
        const std::optional<px::Error> failed =
            fixture.ledger->update_now(unknown, {.state = px::EntryState::failed, .at = at(1)});
        REQUIRE(failed.has_value());
        CHECK(failed->kind == px::ErrorKind::ledger);
        CHECK(failed->message.find("no entry " + std::to_string(unknown)) != std::string::npos);
    }
    CHECK(fixture.ledger->find_now({})->front().state == px::EntryState::pending);
}

TEST_CASE_TEMPLATE("find honours every member of the query, by increasing id", Fixture, LEDGER_FIXTURES) {
    Fixture fixture;
    auto& ledger = *fixture.ledger;
    const px::EntryId a = added(ledger, intent("batch", 0));
    const px::EntryId b = added(ledger, intent("batch", 100));
    const px::EntryId c = added(ledger, intent("single", 200, px::LedgerApi::agent));
    const px::EntryId d = added(ledger, intent("batch", 300));
    const px::EntryId e = added(ledger, intent("", 400));
    REQUIRE_FALSE(ledger.update_now(b, {.state = px::EntryState::running, .job_id = "job-b", .at = at(500)}));
    REQUIRE_FALSE(ledger.update_now(c, {.state = px::EntryState::completed, .result = "{}", .at = at(500)}));
    REQUIRE_FALSE(ledger.update_now(d, {.state = px::EntryState::failed, .error = "404", .at = at(500)}));
    REQUIRE_FALSE(ledger.update_now(e, {.state = px::EntryState::dropped, .at = at(500)}));

    using S = px::EntryState;
    using Ids = std::vector<px::EntryId>;
    CHECK(found_ids(ledger, {}) == Ids{a, b, c, d, e});
    CHECK(found_ids(ledger, {.states = {S::pending}}) == Ids{a});
    CHECK(found_ids(ledger, {.states = {S::running, S::pending}}) == Ids{a, b});
    CHECK(found_ids(ledger, {.states = {S::pending, S::running, S::pending}}) == Ids{a, b});
    CHECK(found_ids(ledger, {.states = {S::dropped, S::completed, S::failed}}) == Ids{c, d, e});
    CHECK(found_ids(ledger, {.id = c}) == Ids{c});
    CHECK(found_ids(ledger, {.id = e + 10}).empty());
    CHECK(found_ids(ledger, {.label = "batch"}) == Ids{a, b, d});
    CHECK(found_ids(ledger, {.label = ""}) == Ids{e});
    CHECK(found_ids(ledger, {.label = "none"}).empty());
    CHECK(found_ids(ledger, {.job_id = "job-b"}) == Ids{b});
    CHECK(found_ids(ledger, {.job_id = "job-x"}).empty());
    CHECK(found_ids(ledger, {.states = {S::pending}, .job_id = "job-b"}).empty());
    // Strictly before: an entry made at the bound is not before it, one a millisecond earlier is, and a
    // bound between two milliseconds falls between them.
    CHECK(found_ids(ledger, {.created_before = at(200)}) == Ids{a, b});
    CHECK(found_ids(ledger, {.created_before = at(201)}) == Ids{a, b, c});
    CHECK(found_ids(ledger, {.created_before = at(200) + std::chrono::microseconds(500)}) == Ids{a, b, c});
    CHECK(found_ids(ledger, {.created_before = at(0)}).empty());
    // Filters combine.
    CHECK(found_ids(ledger, {.states = {S::pending, S::running, S::failed},
                             .label = "batch",
                             .created_before = at(300)}) == Ids{a, b});
    CHECK(found_ids(ledger, {.states = {S::running}, .id = b, .label = "batch"}) == Ids{b});
    CHECK(found_ids(ledger, {.states = {S::pending}, .id = b}).empty());
}

TEST_CASE_TEMPLATE("the awaitable operations are the synchronous ones", Fixture, LEDGER_FIXTURES) {
    Fixture fixture;
    boost::asio::io_context io;
    std::shared_ptr<px::Ledger> ledger = fixture.ledger;
    std::optional<px::expected<px::EntryId, px::Error>> id;
    std::optional<std::optional<px::Error>> updated;
    std::optional<std::optional<px::Error>> unknown;
    std::optional<px::expected<std::vector<px::LedgerEntry>, px::Error>> found;
    // Made outside the coroutine: GCC 12 rejects a designated initializer with a string literal in one, and
    // destroys a braced temporary in a co_await expression twice.
    const px::LedgerIntent made = intent("async", 0);
    const px::LedgerUpdate running{.state = px::EntryState::running, .job_id = "j", .at = at(1)};
    const px::LedgerQuery query{.states = {px::EntryState::running}};
    const px::LedgerUpdate later{.at = at(2)};
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
            id.emplace(co_await ledger->add(made));
            updated.emplace(co_await ledger->update(**id, running));
            unknown.emplace(co_await ledger->update(**id + 1, later));
            found.emplace(co_await ledger->find(query));
        },
        boost::asio::detached);
    io.run();
    REQUIRE(id);
    REQUIRE(id->has_value());
    REQUIRE(updated);
    CHECK_FALSE(updated->has_value());
    REQUIRE(unknown);
    REQUIRE(unknown->has_value());
    CHECK((*unknown)->kind == px::ErrorKind::ledger);
    REQUIRE(found);
    REQUIRE(found->has_value());
    REQUIRE((*found)->size() == 1);
    CHECK((*found)->front().job_id == "j");
}
