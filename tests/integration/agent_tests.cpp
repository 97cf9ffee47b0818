// The Agent API's background responses against the simulator over verified HTTPS: every operation and
// outcome of the contract (completed, failed as a 200, cancelled on the server, requires_action,
// incomplete, unknown statuses, the strict 400 naming its field), cancel-on-abandon, the same I/O-step
// fault matrix as the Sonar side for create, retrieve, cancel, wait and run, and the key sweep.
#include "fault_support.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>

// A namespace of its own: the integration files are compiled as one unity translation unit.
namespace agent_tests {

using namespace std::chrono_literals;
using perplexity_sim::Fault;
using perplexity_sim::Operation;
using IoStep = px::detail::IoStep;
using test::error_of;
using test::FaultScope;

namespace {

px::ResponseRequest ask(std::string input) {
    return px::ResponseRequest{.input = std::move(input), .preset = "medium"};
}

/// The fault matrix's client settings, with three attempts unless a test says otherwise.
px::ClientOptions quick(px::ClientOptions options, unsigned attempts = 3) {
    return test::with_attempts(std::move(options), attempts);
}

}  // namespace

TEST_SUITE("agent api") {
    TEST_CASE("run_response: a background response runs to completed, with its answer, sources and cost") {
        test::Harness harness;
        std::vector<px::Event> events;
        std::vector<std::string> event_statuses;
        px::ClientOptions options = quick(harness.client_options());
        options.on_event = [&, check = test::secret_checking_logger()](const px::Event& event) {
            check(event);
            if (event.response != nullptr) {
                event_statuses.push_back(event.response->status_text);
            }
        };
        px::Client client(harness.io.get_executor(), options);
        px::ResponseRequest request = ask("How many moons has Mars?");
        request.tools.push_back(
            px::WebSearchTool{.filters = px::SearchFilters{.search_recency_filter = "month"}});
        std::string created_id;
        std::vector<std::string> progress;
        auto done = harness.run(client.run_response(
            std::move(request),
            {.on_progress =
                 [&](const px::ProgressEvent& event) {
                     CHECK(event.job == nullptr);
                     if (event.kind == px::ProgressEvent::Kind::status_changed) {
                         REQUIRE(event.response != nullptr);
                         progress.push_back(event.response->status_text);
                     }
                 },
             .on_created = [&](const px::Response& response) { created_id = response.id; }}));
        REQUIRE_MESSAGE(done.has_value(), px::to_string(done.error()));
        CHECK(done->status == px::ResponseStatus::completed);
        CHECK(done->id == created_id);
        CHECK(done->id.starts_with("resp_"));
        CHECK(done->output_text().find("Mars") != std::string::npos);
        CHECK_FALSE(done->search_results().empty());
        REQUIRE(done->usage.has_value());
        CHECK(done->usage->total_tokens > 0);
        REQUIRE(done->usage->cost.has_value());
        CHECK(done->usage->cost->currency == "USD");
        CHECK(progress == std::vector<std::string>{"queued", "in_progress", "completed"});
        CHECK(event_statuses == std::vector<std::string>{"queued", "in_progress", "completed"});
        CHECK(harness.simulator.stats().responses_created == 1);
    }

    TEST_CASE("create, retrieve and wait, one at a time") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), quick(harness.client_options()));
        auto created = harness.run(client.create_response(ask("q")));
        REQUIRE_MESSAGE(created.has_value(), px::to_string(created.error()));
        CHECK(created->status == px::ResponseStatus::queued);
        CHECK(created->background == true);
        auto seen = harness.run(client.get_response(created->id));
        REQUIRE(seen.has_value());
        CHECK(seen->id == created->id);
        auto waited = harness.run(client.wait_response(created->id));
        REQUIRE_MESSAGE(waited.has_value(), px::to_string(waited.error()));
        CHECK(waited->status == px::ResponseStatus::completed);
        CHECK_FALSE(waited->output_text().empty());

        auto unknown = harness.run(client.get_response("resp_nope"));
        REQUIRE_FALSE(unknown.has_value());
        CHECK(unknown.error().http_status == 404);
        CHECK(unknown.error().job_id == "resp_nope");
        auto empty = harness.run(client.get_response(""));
        REQUIRE_FALSE(empty.has_value());
        CHECK(empty.error().kind == px::ErrorKind::invalid_argument);
    }

    TEST_CASE("a failed run comes as a 200 with status failed: a job_failed Error with the API's error") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), quick(harness.client_options()));
        auto failed = harness.run(client.run_response(ask("please [[fail]]")));
        REQUIRE_FALSE(failed.has_value());
        const px::Error& error = failed.error();
        CHECK(error.kind == px::ErrorKind::job_failed);
        CHECK(error.http_status == 0);
        CHECK_FALSE(error.api_message.empty());
        REQUIRE(error.response != nullptr);
        CHECK(error.response->status == px::ResponseStatus::failed);
        REQUIRE(error.response->error.has_value());
        CHECK(error.job_id == error.response->id);
    }

    TEST_CASE("cancel: a running response is cancelled on the server, then a wait sees cancelled") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), quick(harness.client_options()));
        auto created = harness.run(client.create_response(ask("a long one")));
        REQUIRE(created.has_value());
        auto acknowledged = harness.run(client.cancel_response(created->id));
        REQUIRE_MESSAGE(acknowledged.has_value(), px::to_string(acknowledged.error()));
        CHECK(acknowledged->response_id == created->id);
        CHECK(acknowledged->status == "cancelling");
        auto waited = harness.run(client.wait_response(created->id));
        REQUIRE_FALSE(waited.has_value());
        CHECK(waited.error().kind == px::ErrorKind::response_cancelled);
        REQUIRE(waited.error().response != nullptr);
        CHECK(waited.error().response->status == px::ResponseStatus::cancelled);
        CHECK(harness.simulator.stats().responses_cancelled == 1);

        // Once final, a cancel is a 400 the Error explains; an unknown id a 404.
        auto again = harness.run(client.cancel_response(created->id));
        REQUIRE_FALSE(again.has_value());
        CHECK(again.error().kind == px::ErrorKind::http_status);
        CHECK(again.error().http_status == 400);
        CHECK(again.error().message.find("already ended") != std::string::npos);
        CHECK(again.error().job_id == created->id);
        auto unknown = harness.run(client.cancel_response("resp_unknown"));
        REQUIRE_FALSE(unknown.has_value());
        CHECK(unknown.error().http_status == 404);
        CHECK(unknown.error().message.find("there is no response resp_unknown") != std::string::npos);
    }

    TEST_CASE("the API's strict 400 names the unknown field, and the Error carries it in api_param") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), quick(harness.client_options()));
        px::ResponseRequest request = ask("q");
        request.extra_fields["bogus_field"] = 1;
        auto refused = harness.run(client.create_response(request));
        REQUIRE_FALSE(refused.has_value());
        CHECK(refused.error().http_status == 400);
        CHECK(refused.error().api_param == "bogus_field");
        CHECK(px::to_string(refused.error()).find("bogus_field") != std::string::npos);
        CHECK_FALSE(refused.error().job_may_exist);
        CHECK(harness.simulator.stats().responses_created == 0);

        // Only what is set is sent: a request using every typed member passes the strict server.
        px::ResponseRequest full{.input = std::vector<px::InputItem>{px::InputMessage{
                                     .role = "user", .content = std::vector<px::InputPart>{{.text = "hi"}}}},
                                 .model = "openai/gpt-5.1",
                                 .instructions = "be brief",
                                 .max_output_tokens = 500,
                                 .max_steps = 3,
                                 .reasoning_effort = "low",
                                 .language_preference = "en",
                                 .temperature = 0.2,
                                 .top_p = 0.9};
        full.tools.push_back(
            px::WebSearchTool{.filters = px::SearchFilters{.search_domain_filter = {"a.org"}},
                              .search_context_size = "low",
                              .max_tokens = 100});
        full.tools.push_back(px::FetchUrlTool{.max_urls = 2});
        auto accepted = harness.run(client.run_response(full));
        REQUIRE_MESSAGE(accepted.has_value(), px::to_string(accepted.error()));
        CHECK(accepted->model == "openai/gpt-5.1");

        // Caught before sending.
        auto invalid = harness.run(client.create_response({.input = "q"}));
        REQUIRE_FALSE(invalid.has_value());
        CHECK(invalid.error().kind == px::ErrorKind::invalid_argument);
        auto invalid_run = harness.run(client.run_response({.input = "", .preset = "medium"}));
        REQUIRE_FALSE(invalid_run.has_value());
        CHECK(invalid_run.error().kind == px::ErrorKind::invalid_argument);
        CHECK(harness.simulator.stats().response_creates_received == 2);
    }

    TEST_CASE("requires_action returns the response with its function call; its output continues the run") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), quick(harness.client_options()));
        px::ResponseRequest request = ask("What is the weather in Paris?");
        request.tools.push_back(px::FunctionTool{.name = "get_weather",
                                                 .description = "today's weather in a city",
                                                 .parameters = boost::json::parse(R"({"type":"object"})")});
        auto paused = harness.run(client.run_response(std::move(request)));
        REQUIRE_MESSAGE(paused.has_value(), px::to_string(paused.error()));
        CHECK(paused->status == px::ResponseStatus::requires_action);
        const auto calls = paused->function_calls();
        REQUIRE(calls.size() == 1);
        CHECK(calls[0]->name == "get_weather");
        CHECK_FALSE(calls[0]->call_id.empty());
        CHECK(boost::json::parse(calls[0]->arguments).is_object());

        px::ResponseRequest answer{.input = std::vector<px::InputItem>{px::FunctionCallOutput{
                                       .call_id = calls[0]->call_id, .output = R"({"sky":"clear"})"}},
                                   .preset = "medium",
                                   .previous_response_id = paused->id};
        auto finished = harness.run(client.run_response(std::move(answer)));
        REQUIRE_MESSAGE(finished.has_value(), px::to_string(finished.error()));
        CHECK(finished->status == px::ResponseStatus::completed);
        CHECK(finished->previous_response_id == paused->id);
    }

    TEST_CASE("incomplete is a result; an unknown status keeps the wait going until its deadline") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), quick(harness.client_options()));
        auto incomplete = harness.run(client.run_response(ask("long [[incomplete]]")));
        REQUIRE_MESSAGE(incomplete.has_value(), px::to_string(incomplete.error()));
        CHECK(incomplete->status == px::ResponseStatus::incomplete);
        CHECK(incomplete->incomplete_details.has_value());

        px::ResponseWaitOptions short_wait{
            .poll = px::PollPolicy{.backoff = {.initial = 5ms, .growth = 1.0, .max = 5ms, .jitter = 0},
                                   .deadline = 300ms,
                                   .last_poll_margin = 0ms}};
        const std::size_t retrieves_before = harness.simulator.stats().retrieves_received;
        auto unknown = harness.run(client.run_response(ask("[[status:deliberating]]"), short_wait));
        REQUIRE_FALSE(unknown.has_value());
        CHECK(unknown.error().kind == px::ErrorKind::wait_deadline);
        REQUIRE(unknown.error().response != nullptr);
        CHECK(unknown.error().response->status == px::ResponseStatus::unknown);
        CHECK(unknown.error().response->status_text == "deliberating");
        CHECK(unknown.error().message.find("deliberating") != std::string::npos);
        // It went on polling the unknown status, not just once.
        CHECK(harness.simulator.stats().retrieves_received > retrieves_before + 5);
    }

    TEST_CASE("cancel on abandon: the caller's cancellation and the deadline cancel the run on the server") {
        // Responses stay queued for a long time, so a wait is still running when it is abandoned.
        test::Harness harness({.created_polls = 1000});
        px::Client client(harness.io.get_executor(), quick(harness.client_options()));
        using namespace boost::asio::experimental::awaitable_operators;

        SUBCASE("cancelled by the caller") {
            const px::ResponseWaitOptions options{.cancel_on_abandon = true};
            auto race = [&]() -> asio::awaitable<px::expected<px::Response, px::Error>> {
                asio::steady_timer timer(harness.io, 100ms);
                auto winner = co_await (client.run_response(ask("q"), options) ||
                                        timer.async_wait(asio::use_awaitable));
                if (winner.index() == 0) {
                    co_return std::get<0>(std::move(winner));
                }
                co_return px::unexpected(px::Error{.message = "the timer won"});
            };
            // The || waits for the losing run to finish, so its cancel has been answered here.
            auto result = harness.run(race());
            CHECK(harness.simulator.stats().responses_cancelled == 1);
            CHECK(harness.simulator.stats().cancels_received == 1);
            if (!result.has_value() && result.error().message != "the timer won") {
                CHECK(result.error().kind == px::ErrorKind::cancelled);
            }
        }
        SUBCASE("the deadline passed") {
            px::ResponseWaitOptions options{
                .poll = px::PollPolicy{.backoff = {.initial = 5ms, .max = 5ms, .jitter = 0},
                                       .deadline = 200ms,
                                       .last_poll_margin = 0ms},
                .cancel_on_abandon = true};
            auto result = harness.run(client.run_response(ask("q"), options));
            REQUIRE_FALSE(result.has_value());
            CHECK(result.error().kind == px::ErrorKind::wait_deadline);
            CHECK(result.error().message.find("the run was cancelled on the server") != std::string::npos);
            CHECK(harness.simulator.stats().responses_cancelled == 1);
        }
        SUBCASE("without the option, the run is left running") {
            px::ResponseWaitOptions options{
                .poll = px::PollPolicy{.backoff = {.initial = 5ms, .max = 5ms, .jitter = 0},
                                       .deadline = 200ms,
                                       .last_poll_margin = 0ms}};
            auto result = harness.run(client.run_response(ask("q"), options));
            REQUIRE_FALSE(result.has_value());
            CHECK(result.error().kind == px::ErrorKind::wait_deadline);
            CHECK(harness.simulator.stats().cancels_received == 0);
        }
    }

    TEST_CASE(
        "a create whose answer was lost is not sent again, and says a run may exist that cannot be found") {
        test::Harness harness;
        harness.simulator.inject(
            {.operation = Operation::create_response, .action = Fault::Action::drop_handled});
        px::Client client(harness.io.get_executor(), quick(harness.client_options(), 5));
        auto lost = harness.run(client.run_response(ask("q")));
        REQUIRE_FALSE(lost.has_value());
        CHECK(lost.error().job_may_exist);
        CHECK(lost.error().message.find("cannot be looked up") != std::string::npos);
        CHECK(harness.simulator.stats().response_creates_received == 1);
        CHECK(harness.simulator.stats().responses_created == 1);

        // A 429 is a refusal: nothing was made, so the create goes again after the pause.
        harness.simulator.inject(
            {.operation = Operation::create_response, .status = 429, .headers = {{"retry-after-ms", "1"}}});
        auto paced = harness.run(client.create_response(ask("q")));
        REQUIRE_MESSAGE(paced.has_value(), px::to_string(paced.error()));
        CHECK(harness.simulator.stats().response_creates_received == 3);
        CHECK(harness.simulator.stats().responses_created == 2);
    }

    TEST_CASE("every I/O step of every Agent API operation fails cleanly, and no run is made twice") {
        test::Harness harness;
        std::string finished_id;
        {
            px::Client setup(harness.io.get_executor(), quick(harness.client_options()));
            auto done = harness.run(setup.run_response(ask("an existing response")));
            REQUIRE(done.has_value());
            finished_id = done->id;
        }
        struct Tested {
            const char* name;
            std::size_t creates;
            std::function<asio::awaitable<std::optional<px::Error>>(px::Client&, const std::string& running)>
                start;
        };
        const std::vector<Tested> operations = {
            {"create_response", 1,
             [](px::Client& client, const std::string&) -> asio::awaitable<std::optional<px::Error>> {
                 co_return error_of(co_await client.create_response(ask("q")));
             }},
            {"get_response", 0,
             [&](px::Client& client, const std::string&) -> asio::awaitable<std::optional<px::Error>> {
                 co_return error_of(co_await client.get_response(finished_id));
             }},
            {"cancel_response", 0,
             [](px::Client& client, const std::string& running) -> asio::awaitable<std::optional<px::Error>> {
                 co_return error_of(co_await client.cancel_response(running));
             }},
            {"wait_response", 0,
             [&](px::Client& client, const std::string&) -> asio::awaitable<std::optional<px::Error>> {
                 co_return error_of(co_await client.wait_response(finished_id));
             }},
            {"run_response", 1,
             [](px::Client& client, const std::string&) -> asio::awaitable<std::optional<px::Error>> {
                 co_return error_of(co_await client.run_response(ask("q")));
             }},
        };
        // A fresh, still queued response for each cancel.
        auto running_response = [&]() {
            px::Client setup(harness.io.get_executor(), quick(harness.client_options()));
            auto created = harness.run(setup.create_response(ask("to cancel")));
            REQUIRE(created.has_value());
            return created->id;
        };
        std::size_t failures_checked = 0;
        std::map<IoStep, std::size_t> steps_failed;
        for (const Tested& operation : operations) {
            const std::string name = operation.name;
            CAPTURE(name);
            px::detail::IoFaultPlan trace;
            {
                const std::string running = running_response();
                FaultScope scope(trace);
                px::Client client(harness.io.get_executor(), quick(harness.client_options(), 1));
                auto error = harness.run(operation.start(client, running));
                REQUIRE_MESSAGE(!error, px::to_string(*error));
            }
            REQUIRE(trace.steps.size() >= 7);
            test::for_each_injected_failure(
                trace.steps, steps_failed, [&](const test::InjectedFailure& failure) {
                    const auto& [n, step, injected, attempts] = failure;
                    const std::string running = running_response();
                    const std::size_t created_before = harness.simulator.stats().responses_created;
                    px::detail::IoFaultPlan plan{.fail_at = {n}, .error = injected};
                    std::optional<px::Client> client;
                    client.emplace(harness.io.get_executor(), quick(harness.client_options(), attempts));
                    std::optional<px::Error> error;
                    {
                        FaultScope scope(plan);
                        error = harness.run(operation.start(*client, running));
                        if (step == IoStep::shutdown) {
                            client.reset();
                        }
                    }
                    ++failures_checked;
                    const std::size_t created = harness.simulator.stats().responses_created - created_before;
                    // Never a second run: the create has no key, so it is never resent once it may
                    // have arrived.
                    CHECK(created <= operation.creates);
                    if (step == IoStep::shutdown) {
                        CHECK_MESSAGE(!error, px::to_string(*error));
                    } else if (error) {
                        CHECK(error->kind == test::kind_for(injected));
                        CHECK(error->cause == injected);
                        CHECK(px::to_string(*error).find("127.0.0.1") != std::string::npos);
                        const bool request_went_out =
                            step == IoStep::read_header || step == IoStep::read_body;
                        if (operation.creates > 0 && !error->job_id) {
                            CHECK(error->job_may_exist == request_went_out);
                            CHECK_FALSE(error->idempotency_key.has_value());
                            if (request_went_out) {
                                CHECK(error->message.find("cannot be looked up") != std::string::npos);
                            } else {
                                CHECK(created == 0);
                                CHECK(error->message.find("no response was created") != std::string::npos);
                            }
                        }
                        if (name == "get_response" || name == "wait_response") {
                            CHECK(error->job_id == finished_id);
                        }
                        if (name == "cancel_response") {
                            CHECK(error->job_id == running);
                        }
                        if (attempts > 1) {
                            // Only the create (alone or in a run) may fail despite retries.
                            CHECK(operation.creates > 0);
                        }
                    } else if (operation.creates > 0) {
                        CHECK(created == 1);
                    }
                    if (client) {
                        auto after = harness.run(client->get_response(finished_id));
                        CHECK_MESSAGE(after.has_value(), px::to_string(after.error()));
                    }
                });
        }
        test::check_every_step_failed(steps_failed);
        MESSAGE(failures_checked << " injected failures checked");
    }

    TEST_CASE("the key never shows in an Agent API Error or event, even when echoed back") {
        const std::string& secret = test::secret_key;
        test::Harness harness;
        harness.simulator.inject({.operation = Operation::create_response,
                                  .status = 400,
                                  .body = R"({"error":{"message":"bad )" + secret +
                                          R"(","type":"invalid_request",)"
                                          R"("code":400,"param":")" +
                                          secret + R"("}})"});
        harness.simulator.inject({.operation = Operation::retrieve_response,
                                  .status = 503,
                                  .headers = {{"retry-after-ms", "1"}},
                                  .body = "upstream " + secret});
        harness.simulator.inject({.operation = Operation::cancel_response,
                                  .status = 404,
                                  .body = R"({"error":{"message":"no )" + secret + R"("}})"});
        px::Client client(harness.io.get_executor(), quick(harness.client_options()));
        std::string seen;
        auto record = [&](const px::ProgressEvent& event) {
            seen += std::string(event.job_id);
            if (event.response) {
                seen += px::to_json_string(*event.response);
            }
            if (event.error) {
                seen += test::everything_in(*event.error);
            }
        };
        auto refused = harness.run(client.create_response(ask("q")));
        REQUIRE_FALSE(refused.has_value());
        seen += test::everything_in(refused.error()) + refused.error().api_param;
        auto done = harness.run(client.run_response(ask("q"), {.on_progress = record}));
        REQUIRE(done.has_value());
        auto cancel = harness.run(client.cancel_response(done->id));
        REQUIRE_FALSE(cancel.has_value());
        seen += test::everything_in(cancel.error());
        auto failed = harness.run(client.run_response(ask("[[fail]]"), {.on_progress = record}));
        REQUIRE_FALSE(failed.has_value());
        seen += test::everything_in(failed.error());
        CHECK(seen.find("[redacted]") != std::string::npos);
        CHECK(seen.find(secret) == std::string::npos);
    }
}

}  // namespace agent_tests
