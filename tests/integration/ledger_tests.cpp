// Durable jobs against the simulator over verified HTTPS, with the in-memory ledger: what run and
// run_response record and in which order, that nothing is sent the ledger does not know about, and what
// Client::resume does with each kind of unfinished entry. The SQLite ledger's own tests are in
// tests/ledger/, and the crash tests (a real process killed at random moments) in tests/crash/.
#include "fault_support.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <perplexity/memory_ledger.hpp>

#include <boost/asio/post.hpp>

#include <functional>
#include <memory>

// A namespace of its own: the integration files are compiled as one unity translation unit.
namespace ledger_tests {

using namespace std::chrono_literals;
using perplexity_sim::Fault;
using perplexity_sim::Operation;

namespace {

struct LedgerHarness : test::Harness {
    explicit LedgerHarness(perplexity_sim::SimulatorOptions options = {})
        : test::Harness(std::move(options)) {}

    px::ClientOptions client_options(unsigned attempts = 3) const {
        px::ClientOptions options = test::with_attempts(test::Harness::client_options(), attempts);
        options.ledger = ledger;
        return options;
    }

    std::vector<px::LedgerEntry> entries() const {
        auto found = ledger->find_now({});
        REQUIRE(found);
        return *found;
    }

    std::shared_ptr<px::MemoryLedger> ledger = std::make_shared<px::MemoryLedger>();
};

/// A run whose caller cancels it as soon as its job exists, which leaves its entry running.
px::expected<px::Job, px::Error> run_cancelled_once_created(asio::io_context& io, px::Client& client) {
    bool created = false;
    return test::cancel_when(
        io, client.run(test::question("q"), {.on_created = [&](const px::Job&) { created = true; }}),
        [&] { return created; });
}

Fault lost_answer(Operation operation) {
    return Fault{.operation = operation, .action = Fault::Action::drop_handled};
}

}  // namespace

TEST_SUITE("ledger") {
    TEST_CASE("run records the intent before the create, then the job id, and the outcome with its answer") {
        LedgerHarness harness;
        px::ClientOptions options = harness.client_options();
        std::vector<px::EntryState> state_at_create;
        options.on_event = [&](const px::Event& event) {
            if (event.kind == px::Event::Kind::request_sent && event.method == "POST") {
                for (const auto& entry : harness.entries()) {
                    state_at_create.push_back(entry.state);
                }
            }
        };
        px::Client client(harness.io.get_executor(), options);
        std::vector<px::EntryState> state_at_created;
        auto job = harness.run(
            client.run(test::question("How far is the Moon?"), {.on_created =
                                                                    [&](const px::Job&) {
                                                                        // The id is recorded before anyone
                                                                        // hears of it.
                                                                    },
                                                                .idempotency_key = "key-of-the-moon",
                                                                .label = "question 1"}));
        REQUIRE(job);
        // Nothing was sent before the intent was recorded.
        CHECK(state_at_create == std::vector{px::EntryState::pending});
        const auto entries = harness.entries();
        REQUIRE(entries.size() == 1);
        const px::LedgerEntry& entry = entries[0];
        CHECK(entry.api == px::LedgerApi::sonar);
        CHECK(entry.state == px::EntryState::completed);
        CHECK(entry.label == "question 1");
        CHECK(entry.idempotency_key == "key-of-the-moon");
        CHECK(entry.job_id == job->id);
        CHECK(entry.status == "COMPLETED");
        CHECK(entry.error.empty());
        // The request is the ChatRequest's JSON, without the key or anything of the connection.
        CHECK(entry.request.find("How far is the Moon?") != std::string::npos);
        CHECK(entry.request.find(test::secret_key) == std::string::npos);
        CHECK(entry.request.find("idempotency_key") == std::string::npos);
        auto recorded = px::parse_job(entry.result);
        REQUIRE(recorded);
        CHECK(recorded->id == job->id);
        CHECK(recorded->status == px::JobStatus::completed);
        REQUIRE(recorded->response);
        CHECK(recorded->response->text() == job->response->text());
        CHECK(entry.created_at <= entry.updated_at);
        CHECK(harness.simulator.stats().jobs_created == 1);
    }

    TEST_CASE("statuses are recorded as they change; the id right after on_created has seen it") {
        LedgerHarness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        std::optional<px::LedgerEntry> at_created;
        std::vector<std::string> statuses;
        auto job = harness.run(client.run(
            test::question("q"), {.on_progress =
                                      [&](const px::ProgressEvent& event) {
                                          if (event.kind == px::ProgressEvent::Kind::sleeping) {
                                              statuses.push_back(harness.entries()[0].status);
                                          }
                                      },
                                  .on_created = [&](const px::Job&) { at_created = harness.entries()[0]; }}));
        REQUIRE(job);
        REQUIRE(at_created);
        // on_created runs when the create's answer is reported, just before the driver records it.
        CHECK(at_created->state == px::EntryState::pending);
        REQUIRE_FALSE(statuses.empty());
        CHECK(statuses.front() == "CREATED");
        CHECK(std::find(statuses.begin(), statuses.end(), "IN_PROGRESS") != statuses.end());
    }

    TEST_CASE("an intent that cannot be recorded stops the create: nothing is sent, and the Error says why") {
        LedgerHarness harness;
        harness.ledger->refuse_writes("disk full");
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto job = harness.run(client.run(test::question("q")));
        REQUIRE_FALSE(job);
        CHECK(job.error().kind == px::ErrorKind::ledger);
        CHECK(job.error().message.find("not sent") != std::string::npos);
        CHECK(job.error().message.find("disk full") != std::string::npos);
        CHECK_FALSE(job.error().job_may_exist);
        auto response =
            harness.run(client.run_response(px::ResponseRequest{.input = "q", .preset = "medium"}));
        REQUIRE_FALSE(response);
        CHECK(response.error().kind == px::ErrorKind::ledger);
        CHECK(harness.simulator.stats().creates_received == 0);
        CHECK(harness.simulator.stats().response_creates_received == 0);
        harness.ledger->accept_writes();
        CHECK(harness.entries().empty());
    }

    TEST_CASE("a failed status write does not stop the wait: it is reported, and the answer still arrives") {
        LedgerHarness harness;
        px::ClientOptions options = harness.client_options();
        std::vector<std::string> failures;
        options.on_event = [&](const px::Event& event) {
            if (event.kind == px::Event::Kind::ledger_write_failed) {
                REQUIRE(event.error != nullptr);
                failures.push_back(event.error->message);
            }
        };
        px::Client client(harness.io.get_executor(), options);
        auto job = harness.run(client.run(test::question("q"), {.on_created = [&](const px::Job&) {
                                              harness.ledger->refuse_writes("read-only");
                                          }}));
        REQUIRE(job);
        REQUIRE_FALSE(failures.empty());
        CHECK(failures.front().find("read-only") != std::string::npos);
        harness.ledger->accept_writes();
        // The entry kept its intent: a resume would create with the same key and find the same job.
        CHECK(harness.entries()[0].state == px::EntryState::pending);
    }

    TEST_CASE("a FAILED job fails its entry with the API's message; a refused create fails it at once") {
        LedgerHarness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto failed = harness.run(client.run(test::question("[[fail]] q")));
        REQUIRE_FALSE(failed);
        REQUIRE(failed.error().kind == px::ErrorKind::job_failed);
        auto entries = harness.entries();
        CHECK(entries[0].state == px::EntryState::failed);
        CHECK(entries[0].status == "FAILED");
        CHECK(entries[0].error == px::to_string(failed.error()));
        CHECK(px::parse_job(entries[0].result));

        harness.simulator.inject({.operation = Operation::create, .status = 400});
        auto refused = harness.run(client.run(test::question("q")));
        REQUIRE_FALSE(refused);
        entries = harness.entries();
        REQUIRE(entries.size() == 2);
        CHECK(entries[1].state == px::EntryState::failed);
        CHECK(entries[1].job_id.empty());
    }

    TEST_CASE(
        "resume: a Sonar create whose answer was lost is created again with its key, making no second job") {
        LedgerHarness harness;
        for (int i = 0; i < 2; ++i) {
            harness.simulator.inject(lost_answer(Operation::create));
        }
        {
            px::Client client(harness.io.get_executor(), harness.client_options(2));
            auto job = harness.run(client.run(test::question("q"), {.label = "lost"}));
            REQUIRE_FALSE(job);
            CHECK(job.error().job_may_exist);
        }
        CHECK(harness.simulator.stats().jobs_created == 1);
        auto entries = harness.entries();
        REQUIRE(entries.size() == 1);
        CHECK(entries[0].state == px::EntryState::pending);
        CHECK_FALSE(entries[0].error.empty());

        px::Client restarted(harness.io.get_executor(), harness.client_options());
        std::vector<std::pair<std::string, px::expected<px::Job, px::Error>>> outcomes;
        auto report = harness.run(restarted.resume(
            {.on_job = [&](const px::LedgerEntry& entry, const px::expected<px::Job, px::Error>& outcome) {
                outcomes.emplace_back(entry.label, outcome);
            }}));
        REQUIRE(report);
        CHECK(report->resumed.size() == 1);
        CHECK(report->stale.empty());
        REQUIRE(outcomes.size() == 1);
        CHECK(outcomes[0].first == "lost");
        REQUIRE(outcomes[0].second);
        CHECK(harness.simulator.stats().jobs_created == 1);
        entries = harness.entries();
        CHECK(entries[0].state == px::EntryState::completed);
        CHECK(entries[0].job_id == outcomes[0].second->id);

        // Nothing is left: a second resume does nothing.
        auto again = harness.run(restarted.resume());
        REQUIRE(again);
        CHECK(again->resumed.empty());
        CHECK(harness.simulator.stats().creates_received == 3);
    }

    TEST_CASE("resume: a running job whose wait was abandoned is waited on again") {
        LedgerHarness harness({.in_progress_polls = 3});
        px::ClientOptions options = harness.client_options();
        {
            px::Client client(harness.io.get_executor(), options);
            auto job = run_cancelled_once_created(harness.io, client);
            REQUIRE_FALSE(job);
            CHECK(job.error().kind == px::ErrorKind::cancelled);
        }
        auto entries = harness.entries();
        REQUIRE(entries.size() == 1);
        CHECK(entries[0].state == px::EntryState::running);
        CHECK_FALSE(entries[0].job_id.empty());
        CHECK(entries[0].error.find("cancelled") != std::string::npos);

        px::Client restarted(harness.io.get_executor(), options);
        int answered = 0;
        auto report = harness.run(restarted.resume(
            {.on_job = [&](const px::LedgerEntry& entry, const px::expected<px::Job, px::Error>& outcome) {
                REQUIRE(outcome);
                CHECK(outcome->id == entry.job_id);
                ++answered;
            }}));
        REQUIRE(report);
        CHECK(answered == 1);
        CHECK(harness.entries()[0].state == px::EntryState::completed);
        CHECK(harness.simulator.stats().jobs_created == 1);
        CHECK(harness.simulator.stats().creates_received == 1);
    }

    TEST_CASE("resume: too old entries are reported as stale and left alone") {
        LedgerHarness harness;
        const auto long_ago = std::chrono::system_clock::now() - 30 * 24h;
        const auto pending = harness.ledger->add_now({.api = px::LedgerApi::sonar,
                                                      .request = R"({"model":"sonar"})",
                                                      .idempotency_key = "k",
                                                      .at = long_ago});
        const auto running = harness.ledger->add_now({.api = px::LedgerApi::sonar, .at = long_ago});
        REQUIRE(pending);
        REQUIRE(running);
        REQUIRE_FALSE(
            harness.ledger->update_now(*running, {.state = px::EntryState::running, .job_id = "old-job"}));
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto report = harness.run(client.resume());
        REQUIRE(report);
        CHECK(report->resumed.empty());
        REQUIRE(report->stale.size() == 2);
        CHECK(harness.simulator.stats().requests == 0);
        CHECK(harness.entries()[0].state == px::EntryState::pending);

        // Within a longer window the running one is waited on (and the API no longer knows it: 404 fails it).
        auto wider = harness.run(client.resume({.wait_within = 60 * 24h}));
        REQUIRE(wider);
        CHECK(wider->resumed.size() == 1);
        CHECK(wider->stale.size() == 1);
        CHECK(harness.entries()[1].state == px::EntryState::failed);
        CHECK(harness.simulator.stats().creates_received == 0);
    }

    TEST_CASE("resume: a damaged request is not sent, and the entry says why") {
        LedgerHarness harness;
        REQUIRE(harness.ledger->add_now({.api = px::LedgerApi::sonar,
                                         .request = "{\"model\": tru",
                                         .idempotency_key = "k",
                                         .at = std::chrono::system_clock::now()}));
        px::Client client(harness.io.get_executor(), harness.client_options());
        std::optional<px::Error> error;
        auto report = harness.run(client.resume({.on_job = [&](const px::LedgerEntry&, const auto& outcome) {
            REQUIRE_FALSE(outcome);
            error = outcome.error();
        }}));
        REQUIRE(report);
        REQUIRE(error);
        CHECK(error->kind == px::ErrorKind::ledger);
        CHECK(error->message.find("ledger entry 1") != std::string::npos);
        CHECK(harness.simulator.stats().creates_received == 0);
        CHECK(harness.entries()[0].state == px::EntryState::failed);
    }

    TEST_CASE("resume without a ledger is an invalid_argument Error") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto report = harness.run(client.resume());
        REQUIRE_FALSE(report);
        CHECK(report.error().kind == px::ErrorKind::invalid_argument);
    }

    TEST_CASE(
        "Agent API: run_response records its run; a lost create is reported as unfindable, not re-created") {
        LedgerHarness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto response = harness.run(
            client.run_response(px::ResponseRequest{.input = "q", .preset = "medium"}, {.label = "first"}));
        REQUIRE(response);
        auto entries = harness.entries();
        CHECK(entries[0].api == px::LedgerApi::agent);
        CHECK(entries[0].state == px::EntryState::completed);
        CHECK(entries[0].idempotency_key.empty());
        CHECK(entries[0].request.find("\"background\":true") != std::string::npos);
        auto recorded = px::parse_response(entries[0].result);
        REQUIRE(recorded);
        CHECK(recorded->id == response->id);

        harness.simulator.inject(lost_answer(Operation::create_response));
        auto lost = harness.run(client.run_response(px::ResponseRequest{.input = "q2", .preset = "medium"}));
        REQUIRE_FALSE(lost);
        CHECK(lost.error().job_may_exist);
        CHECK(harness.simulator.stats().responses_created == 2);
        CHECK(harness.entries()[1].state == px::EntryState::pending);

        auto report = harness.run(client.resume());
        REQUIRE(report);
        CHECK(report->resumed.empty());
        REQUIRE(report->unfindable.size() == 1);
        CHECK(report->unfindable[0].id == 2);
        CHECK(harness.simulator.stats().responses_created == 2);

        // Only an explicit choice creates it again (and may pay twice: here it does).
        int answered = 0;
        auto recreated = harness.run(
            client.resume({.recreate_unfindable_responses = true,
                           .on_response = [&](const px::LedgerEntry&,
                                              const px::expected<px::Response, px::Error>& outcome) {
                               CHECK(outcome);
                               ++answered;
                           }}));
        REQUIRE(recreated);
        CHECK(recreated->resumed.size() == 1);
        CHECK(answered == 1);
        CHECK(harness.simulator.stats().responses_created == 3);
        CHECK(harness.entries()[1].state == px::EntryState::completed);
    }

    TEST_CASE("Agent API: resume waits on a recorded response; a dropped one is cancelled on the server") {
        LedgerHarness harness({.in_progress_polls = 50});
        px::ClientOptions options = harness.client_options();
        px::Client client(harness.io.get_executor(), options);
        for (const char* label : {"kept", "dropped"}) {
            bool created = false;
            auto response = test::cancel_when(
                harness.io,
                client.run_response(
                    px::ResponseRequest{.input = "q", .preset = "medium"},
                    {.on_created = [&](const px::Response&) { created = true; }, .label = label}),
                [&] { return created; });
            REQUIRE_FALSE(response);
        }
        auto entries = harness.entries();
        REQUIRE(entries.size() == 2);
        CHECK(entries[0].state == px::EntryState::running);
        CHECK(entries[1].state == px::EntryState::running);

        std::vector<std::string> answered;
        auto report = harness.run(client.resume(
            {.keep = [](const px::LedgerEntry& entry) { return entry.label != "dropped"; },
             .on_response =
                 [&](const px::LedgerEntry& entry, const px::expected<px::Response, px::Error>& outcome) {
                     CHECK(outcome);
                     answered.push_back(entry.label);
                 }}));
        REQUIRE(report);
        CHECK(answered == std::vector<std::string>{"kept"});
        REQUIRE(report->dropped.size() == 1);
        CHECK(report->dropped[0].label == "dropped");
        entries = harness.entries();
        CHECK(entries[0].state == px::EntryState::completed);
        CHECK(entries[1].state == px::EntryState::dropped);
        CHECK(entries[1].error.find("cancelled on the server") != std::string::npos);
        CHECK(harness.simulator.stats().responses_cancelled == 1);
        CHECK(harness.simulator.stats().responses_created == 2);
    }

    TEST_CASE(
        "resume leaves alone the entries this Client's runs are working on, so it may run beside them") {
        LedgerHarness harness({.in_progress_polls = 20});
        px::Client client(harness.io.get_executor(), harness.client_options());
        std::optional<px::expected<px::Job, px::Error>> job;
        bool created = false;
        const px::WaitOptions options{.on_created = [&](const px::Job&) { created = true; }};
        asio::co_spawn(harness.io, client.run(test::question("q"), options),
                       [&](std::exception_ptr error, px::expected<px::Job, px::Error> result) {
                           REQUIRE_FALSE(error);
                           job = std::move(result);
                       });
        while (!created) {
            REQUIRE(harness.io.run_one_for(10s) > 0);
        }
        REQUIRE(harness.entries().size() == 1);
        auto report = harness.run(client.resume());
        REQUIRE(report);
        CHECK(report->resumed.empty());
        CHECK(report->stale.empty());
        while (!job) {
            REQUIRE(harness.io.run_one_for(10s) > 0);
        }
        REQUIRE(*job);
        CHECK(harness.entries()[0].state == px::EntryState::completed);
        CHECK(harness.simulator.stats().jobs_created == 1);
        CHECK(harness.simulator.stats().creates_received == 1);

        // Once the run let go of it, an entry is resume's again: here it is finished, so nothing is done.
        auto later = harness.run(client.resume());
        REQUIRE(later);
        CHECK(later->resumed.empty());
    }

    TEST_CASE("resume carries many entries on at once, and cancelling it leaves them unfinished") {
        LedgerHarness harness({.in_progress_polls = 1000000});
        px::ClientOptions options = harness.client_options();
        options.poll.backoff = {.initial = 20ms, .growth = 1.0, .max = 20ms, .jitter = 0};
        px::Client client(harness.io.get_executor(), options);
        for (int i = 0; i < 5; ++i) {
            auto job = run_cancelled_once_created(harness.io, client);
            REQUIRE_FALSE(job);
        }
        int outcomes = 0;
        const auto gets_before = harness.simulator.stats().gets_received;
        auto report =
            test::cancel_when(harness.io,
                              client.resume({.on_job =
                                                 [&](const px::LedgerEntry&, const auto& outcome) {
                                                     REQUIRE_FALSE(outcome);
                                                     CHECK(outcome.error().kind == px::ErrorKind::cancelled);
                                                     ++outcomes;
                                                 }}),
                              [&] { return harness.simulator.stats().gets_received >= gets_before + 10; });
        REQUIRE(report);
        CHECK(report->resumed.size() == 5);
        CHECK(outcomes == 5);
        for (const auto& entry : harness.entries()) {
            CHECK(entry.state == px::EntryState::running);
        }
        CHECK(harness.simulator.stats().jobs_created == 5);
    }
}

}  // namespace ledger_tests
