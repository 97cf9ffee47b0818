// MemoryLedger beyond the shared contract (tests/ledger/ledger_contract_tests.cpp): the refusal that
// stands in for a full disk in tests of the Client, and the Ledger's default claim of a one-process
// ledger.
#include "ledger_test_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

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

TEST_CASE("a one-process ledger claims every unfinished entry the query selects, and holds them all") {
    auto ledger = std::make_shared<px::MemoryLedger>();
    const px::EntryId pending = *ledger->add_now(intent("a", 0));
    const px::EntryId running = *ledger->add_now(intent("b", 1));
    const px::EntryId done = *ledger->add_now(intent("c", 2));
    REQUIRE_FALSE(
        ledger->update_now(running, {.state = px::EntryState::running, .job_id = "j", .at = at(3)}));
    REQUIRE_FALSE(
        ledger->update_now(done, {.state = px::EntryState::completed, .result = "{}", .at = at(3)}));
    std::shared_ptr<px::Ledger> as_ledger = ledger;
    const px::LedgerQuery all{};
    const px::LedgerQuery finished_only{.states = {px::EntryState::completed}};
    const px::LedgerQuery some{.states = {px::EntryState::running, px::EntryState::completed}};
    std::vector<std::vector<px::EntryId>> claimed;
    boost::asio::io_context io;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
            for (const px::LedgerQuery* query : {&all, &finished_only, &some}) {
                auto entries = co_await as_ledger->claim(*query);
                std::vector<px::EntryId> ids;
                for (const auto& entry : entries.value()) {
                    ids.push_back(entry.id);
                }
                claimed.push_back(ids);
            }
        },
        boost::asio::detached);
    io.run();
    REQUIRE(claimed.size() == 3);
    CHECK(claimed[0] == std::vector<px::EntryId>{pending, running});
    CHECK(claimed[1].empty());
    CHECK(claimed[2] == std::vector<px::EntryId>{running});
    CHECK(as_ledger->holding(pending) == px::EntryHold::held);
}
