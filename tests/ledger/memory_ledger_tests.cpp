// MemoryLedger beyond the shared contract (tests/ledger/ledger_contract_tests.cpp): the refusal that
// stands in for a full disk in tests of the Client.
#include "ledger_test_support.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>

using namespace ledger_test;

TEST_CASE("MemoryLedger: refuse_writes fails every write with the reason, and records nothing") {
    px::MemoryLedger ledger;
    const auto first = ledger.add_now(intent("kept", 0));
    REQUIRE(first.has_value());

    ledger.refuse_writes("the disk is full");
    const auto refused_add = ledger.add_now(intent("refused", 1));
    REQUIRE_FALSE(refused_add.has_value());
    CHECK(refused_add.error().kind == px::ErrorKind::ledger);
    CHECK(refused_add.error().message.find("the disk is full") != std::string::npos);
    const std::optional<px::Error> refused_update =
        ledger.update_now(*first, {.state = px::EntryState::running, .job_id = "job-1", .at = at(2)});
    REQUIRE(refused_update.has_value());
    CHECK(refused_update->kind == px::ErrorKind::ledger);
    CHECK(refused_update->message.find("entry " + std::to_string(*first)) != std::string::npos);

    // Reading goes on while writes are refused.
    auto found = ledger.find_now({});
    REQUIRE(found.has_value());
    REQUIRE(found->size() == 1);
    CHECK(found->front().state == px::EntryState::pending);
    CHECK(found->front().job_id.empty());

    ledger.accept_writes();
    CHECK_FALSE(
        ledger.update_now(*first, {.state = px::EntryState::running, .job_id = "job-1", .at = at(3)}));
    const auto second = ledger.add_now(intent("after", 4));
    REQUIRE(second.has_value());
    CHECK(*second == *first + 1);
    CHECK(ledger.find_now({})->size() == 2);
}
