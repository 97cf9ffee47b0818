// The client end to end: real sockets, real TLS with verification, against the in-process simulator.
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <algorithm>
#include <set>

using namespace std::chrono_literals;
using test::question;

TEST_SUITE("client over https") {
    TEST_CASE("a job goes through every status to COMPLETED") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());

        auto created = harness.run(client.create(question("How many stars are in the Milky Way?")));
        REQUIRE_MESSAGE(created.has_value(), px::to_string(created.error()));
        CHECK(created->status == px::JobStatus::created);
        CHECK(created->model == "sonar-deep-research");
        CHECK_FALSE(created->id.empty());

        std::vector<px::JobStatus> seen;
        px::expected<px::Job, px::Error> job = *created;
        for (int poll = 0; poll < 10 && !job->is_final(); ++poll) {
            job = harness.run(client.get(created->id));
            REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
            seen.push_back(job->status);
        }
        CHECK(seen == std::vector<px::JobStatus>{px::JobStatus::created, px::JobStatus::in_progress,
                                                 px::JobStatus::completed});
        REQUIRE(job->response);
        CHECK(job->id == created->id);
        CHECK(job->started_at);
        CHECK(job->completed_at);
        const std::string text = job->response->text();
        CHECK(text.find("Milky Way") != std::string::npos);
        CHECK_FALSE(px::split_thinking(text).thinking.empty());
        CHECK_FALSE(job->response->citations.empty());
        REQUIRE(job->response->usage);
        REQUIRE(job->response->usage->cost);
        CHECK(job->response->usage->cost->total_cost > 0);
    }

    TEST_CASE("a job that fails reaches FAILED with its error message") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto created = harness.run(client.create(question("please [[fail]]")));
        REQUIRE(created.has_value());
        px::expected<px::Job, px::Error> job = *created;
        for (int poll = 0; poll < 10 && !job->is_final(); ++poll) {
            job = harness.run(client.get(created->id));
            REQUIRE(job.has_value());
        }
        CHECK(job->status == px::JobStatus::failed);
        CHECK(job->failed_at);
        CHECK(job->error_message == "Internal error while processing request");
        CHECK_FALSE(job->response);
    }

    TEST_CASE("list pages through every job, newest first") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        std::vector<std::string> created_ids;
        for (int i = 0; i < 7; ++i) {
            auto job = harness.run(client.create(question("question " + std::to_string(i))));
            REQUIRE(job.has_value());
            created_ids.push_back(job->id);
        }
        std::vector<std::string> listed;
        std::optional<std::string> token;
        int pages = 0;
        do {
            auto page = harness.run(client.list(3, token));
            REQUIRE_MESSAGE(page.has_value(), px::to_string(page.error()));
            CHECK(page->jobs.size() <= 3);
            for (const auto& summary : page->jobs) {
                listed.push_back(summary.id);
                CHECK(summary.status == px::JobStatus::created);
            }
            token = page->next_token;
            ++pages;
        } while (token && pages < 10);
        CHECK(pages == 3);
        std::reverse(created_ids.begin(), created_ids.end());
        CHECK(listed == created_ids);
    }

    TEST_CASE("the list uses the API's page size when no limit is given") {
        test::Harness harness({.default_page_size = 2});
        px::Client client(harness.io.get_executor(), harness.client_options());
        for (int i = 0; i < 3; ++i) {
            REQUIRE(harness.run(client.create(question("q"))).has_value());
        }
        auto page = harness.run(client.list());
        REQUIRE(page.has_value());
        CHECK(page->jobs.size() == 2);
        CHECK(page->next_token);
    }

    TEST_CASE("a wrong API key is a 401 with the API's message, and the key is not in the error") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.api_key = "pplx-WRONG-key-4e1d9c";
        px::Client client(harness.io.get_executor(), options);
        auto job = harness.run(client.create(question("q")));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::http_status);
        CHECK(job.error().http_status == 401);
        CHECK(job.error().api_type == "authentication_error");
        CHECK(job.error().api_message == "Invalid API key");
        // The example in error.hpp's operator<< documentation.
        CHECK(px::to_string(job.error()) ==
              "http_status: the API refused the API key; check ClientOptions::api_key (PERPLEXITY_API_KEY) "
              "(HTTP 401 authentication_error: Invalid API key)");
        CHECK(px::to_string(job.error()).find("pplx-WRONG-key-4e1d9c") == std::string::npos);
        CHECK(harness.simulator.stats().jobs_created == 0);
    }

    TEST_CASE("an unknown job id is a 404 that names the id") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto job = harness.run(client.get("no-such-job"));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::http_status);
        CHECK(job.error().http_status == 404);
        CHECK(job.error().api_type == "not_found");
        CHECK(job.error().job_id == "no-such-job");
    }

    TEST_CASE("job ids are percent-encoded into the path") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto job = harness.run(client.get("../../etc/passwd?x=1#y"));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().http_status == 404);
    }

    TEST_CASE("a create with a used idempotency key returns the same job") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        const std::string key = "4b7e2a9c-0d1f-4e6a-8b3c-5d2e1f0a9b8c";
        auto first = harness.run(client.create(question("once"), key));
        auto second = harness.run(client.create(question("once"), key));
        REQUIRE(first.has_value());
        REQUIRE(second.has_value());
        CHECK(first->id == second->id);
        CHECK(harness.simulator.stats().jobs_created == 1);
        auto other = harness.run(client.create(question("once"), "another-key"));
        REQUIRE(other.has_value());
        CHECK(other->id != first->id);
    }

    TEST_CASE("the API's validation errors come back readable") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        px::ChatRequest request = question("q");
        request.extra_params["messages"] = "not a list";
        auto job = harness.run(client.create(request));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::http_status);
        CHECK(job.error().http_status == 422);
        CHECK(job.error().api_type == "validation_error");
        CHECK(job.error().api_message.find("messages") != std::string::npos);
    }

    TEST_CASE("the documented path family works too") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.path_prefix = std::string(px::paths::v1_async_sonar);
        px::Client client(harness.io.get_executor(), options);
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        auto again = harness.run(client.get(created->id));
        REQUIRE(again.has_value());
        CHECK(again->id == created->id);
    }

    TEST_CASE("bad arguments are refused before anything is sent") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        px::ChatRequest no_model = question("q");
        no_model.model.clear();
        px::ChatRequest no_messages = question("q");
        no_messages.messages.clear();
        px::ChatRequest no_role = question("q");
        no_role.messages[0].role.clear();
        px::ChatRequest zero_tokens = question("q");
        zero_tokens.max_tokens = 0;
        for (auto* request : {&no_model, &no_messages, &no_role, &zero_tokens}) {
            auto job = harness.run(client.create(*request));
            REQUIRE_FALSE(job.has_value());
            CHECK(job.error().kind == px::ErrorKind::invalid_argument);
        }
        CHECK(harness.run(client.create(question("q"), std::string())).error().kind ==
              px::ErrorKind::invalid_argument);
        CHECK(harness.run(client.get("")).error().kind == px::ErrorKind::invalid_argument);
        CHECK(harness.run(client.list(0)).error().kind == px::ErrorKind::invalid_argument);
        CHECK(harness.simulator.stats().connections_accepted == 0);
    }
}

TEST_SUITE("connections") {
    TEST_CASE("keep-alive: one connection carries many requests") {
        test::Harness harness;
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        for (int i = 0; i < 4; ++i) {
            REQUIRE(harness.run(client.get(created->id)).has_value());
        }
        REQUIRE(harness.run(client.list()).has_value());
        CHECK(harness.simulator.stats().connections_accepted == 1);
        CHECK(harness.simulator.stats().requests == 6);
        CHECK(client.idle_connection_count() == 1);
    }

    TEST_CASE("a connection the server dropped is replaced without failing the request") {
        test::Harness harness({.requests_per_connection = 1});
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto created = harness.run(client.create(question("q"), "key-1"));
        REQUIRE(created.has_value());
        for (int i = 0; i < 3; ++i) {
            auto job = harness.run(client.get(created->id));
            REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
        }
        auto again = harness.run(client.create(question("q"), "key-1"));
        REQUIRE_MESSAGE(again.has_value(), px::to_string(again.error()));
        CHECK(again->id == created->id);
        const auto stats = harness.simulator.stats();
        CHECK(stats.connections_accepted == 5);
        CHECK(stats.jobs_created == 1);
    }

    TEST_CASE("a response body over the limit is refused and the client stays usable") {
        test::Harness harness({.created_polls = 0, .in_progress_polls = 0, .answer_bytes = 64 * 1024});
        px::ClientOptions options = harness.client_options();
        options.max_response_body = 16 * 1024;
        px::Client client(harness.io.get_executor(), options);
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        auto completed = harness.run(client.get(created->id));
        REQUIRE_FALSE(completed.has_value());
        CHECK(completed.error().kind == px::ErrorKind::protocol);
        CHECK(completed.error().message.find("max_response_body") != std::string::npos);
        CHECK(completed.error().job_id == created->id);
        CHECK(harness.run(client.list()).has_value());
    }

    TEST_CASE("plain http to a loopback simulator") {
        test::Harness harness({.https = false});
        px::ClientOptions options = harness.client_options();
        CHECK(options.base_url.starts_with("http://127.0.0.1:"));
        px::Client client(harness.io.get_executor(), options);
        auto created = harness.run(client.create(question("q")));
        REQUIRE_MESSAGE(created.has_value(), px::to_string(created.error()));
    }

    TEST_CASE("a refused connection is a transport error") {
        asio::io_context io;
        const auto port = test::unused_port(io);
        px::Client client(io.get_executor(), {.base_url = "http://127.0.0.1:" + std::to_string(port),
                                              .api_key = test::secret_key,
                                              .retry = {.max_attempts = 1}});
        auto job = test::run(io, client.get("x"));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::transport);
        CHECK(job.error().cause == asio::error::connection_refused);
        CHECK(job.error().job_id == "x");
    }

    TEST_CASE("a server that never answers hits the request timeout") {
        asio::io_context io;
        test::LoopbackServer silent(io);
        px::Client client(io.get_executor(), {.base_url = silent.base_url(),
                                              .api_key = test::secret_key,
                                              .request_timeout = 200ms,
                                              .retry = {.max_attempts = 1}});
        auto job = test::run(io, client.get("x"));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::timeout);
        CHECK(job.error().message.find("request_timeout") != std::string::npos);
    }

    TEST_CASE("a request cut short by the operation's deadline says so") {
        asio::io_context io;
        test::LoopbackServer silent(io);
        px::Client client(io.get_executor(), {.base_url = silent.base_url(),
                                              .api_key = test::secret_key,
                                              .request_timeout = 60s,
                                              .retry = {.max_attempts = 1}});
        auto job = test::run(io, client.wait("x", {.poll = px::PollPolicy{.deadline = 300ms}}));
        REQUIRE_FALSE(job.has_value());
        // The wait reports its deadline; the timeout under it names the deadline, not the 60 s option.
        CHECK(job.error().kind == px::ErrorKind::wait_deadline);
        auto created =
            test::run(io, client.run(test::question("q"), {.poll = px::PollPolicy{.deadline = 300ms}}));
        REQUIRE_FALSE(created.has_value());
        CHECK(created.error().kind == px::ErrorKind::timeout);
        CHECK_MESSAGE(created.error().message.find("what the operation's deadline left") != std::string::npos,
                      created.error().message);
        CHECK(created.error().message.find("60000 ms") == std::string::npos);
    }

    TEST_CASE("cancellation ends a request and leaves the client usable") {
        asio::io_context io;
        test::LoopbackServer silent(io);
        px::Client client(io.get_executor(), {.base_url = silent.base_url(), .api_key = test::secret_key});
        asio::cancellation_signal cancel;
        std::optional<px::expected<px::Job, px::Error>> outcome;
        asio::co_spawn(io, client.get("x"),
                       asio::bind_cancellation_slot(
                           cancel.slot(), [&](std::exception_ptr, px::expected<px::Job, px::Error> r) {
                               outcome = std::move(r);
                           }));
        // Cancel once the request is in flight: when the silent server has accepted the connection.
        while (silent.accepted() == 0) {
            REQUIRE(io.run_one_for(5s) > 0);
        }
        io.poll();
        cancel.emit(asio::cancellation_type::terminal);
        while (!outcome) {
            REQUIRE(io.run_one_for(5s) > 0);
        }
        REQUIRE_FALSE(outcome->has_value());
        CHECK(outcome->error().kind == px::ErrorKind::cancelled);
        CHECK(client.idle_connection_count() == 0);

        // Usable afterwards: the next request goes out on a new connection and gets its answer.
        silent.set_answering(true);
        auto next = test::run(io, client.get("y"));
        REQUIRE_MESSAGE(next.has_value(), px::to_string(next.error()));
        CHECK(next->id == "y");
        CHECK(silent.accepted() == 2);
    }
}

TEST_SUITE("tls") {
    TEST_CASE("a certificate from an untrusted authority is refused, and the key is never sent") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.ca_pem = perplexity_sim::CertificateAuthority::generate("some other CA").certificate_pem();
        px::Client client(harness.io.get_executor(), options);
        auto job = harness.run(client.list());
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::tls);
        CHECK(job.error().message.find("certificate") != std::string::npos);
        CHECK(harness.simulator.stats().requests == 0);
    }

    TEST_CASE("a certificate for another host name is refused") {
        auto authority = perplexity_sim::CertificateAuthority::generate();
        perplexity_sim::SimulatorOptions sim_options;
        sim_options.identity = authority.issue({"api.example.org"}, {"192.0.2.7"});
        sim_options.ca_pem = authority.certificate_pem();
        test::Harness harness(sim_options);
        px::Client client(harness.io.get_executor(), harness.client_options());
        auto job = harness.run(client.list());
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::tls);
        CHECK(job.error().message.find("mismatch") != std::string::npos);
        CHECK(harness.simulator.stats().requests == 0);
    }

    TEST_CASE("host names are verified as well as addresses") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.base_url = "https://localhost:" + std::to_string(harness.simulator.port());
        px::Client client(harness.io.get_executor(), options);
        auto page = harness.run(client.list());
        REQUIRE_MESSAGE(page.has_value(), px::to_string(page.error()));
    }

    TEST_CASE("the system trust store does not trust the simulator") {
        test::Harness harness;
        px::ClientOptions options = harness.client_options();
        options.ca_pem.clear();
        px::Client client(harness.io.get_executor(), options);
        auto page = harness.run(client.list());
        REQUIRE_FALSE(page.has_value());
        CHECK(page.error().kind == px::ErrorKind::tls);
    }

    TEST_CASE("plain http to a host that is not loopback is refused before any connection") {
        asio::io_context io;
        px::Client client(io.get_executor(),
                          {.base_url = "http://192.0.2.1:80", .api_key = test::secret_key});
        REQUIRE(client.configuration_error());
        auto job = test::run(io, client.get("x"));
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::invalid_argument);
        CHECK(job.error().message.find("allow_insecure_http") != std::string::npos);
    }

    TEST_CASE("unusable options are reported by every operation") {
        asio::io_context io;
        px::Client missing_ca(io.get_executor(),
                              {.api_key = test::secret_key, .ca_file = "/nonexistent/ca.pem"});
        auto job = test::run(io, missing_ca.list());
        REQUIRE_FALSE(job.has_value());
        CHECK(job.error().kind == px::ErrorKind::invalid_argument);
        CHECK(job.error().message.find("/nonexistent/ca.pem") != std::string::npos);

        px::Client no_key(io.get_executor(), {});
        CHECK(test::run(io, no_key.get("x")).error().message.find("API key") != std::string::npos);

        px::Client bad_prefix(io.get_executor(), {.api_key = test::secret_key, .path_prefix = "async"});
        CHECK(test::run(io, bad_prefix.get("x")).error().kind == px::ErrorKind::invalid_argument);
    }

    TEST_CASE("options that would break the request line or a header are refused") {
        // Requests are rendered as text, so nothing may smuggle a line break (or, on the request line, a
        // space) into them.
        struct Case {
            const char* name;
            px::ClientOptions options;
            const char* named_in_message;
        };
        const Case cases[] = {
            {"a line break in the key", {.api_key = "key\r\nX-Injected: 1"}, "API key"},
            {"a space in the key", {.api_key = "key with space"}, "API key"},
            {"a space in the base URL",
             {.base_url = "https://api.perplexity.ai/a b", .api_key = test::secret_key},
             "base_url"},
            {"a line break in the base URL",
             {.base_url = "https://api.perplexity.ai\r\nX: 1", .api_key = test::secret_key},
             "base_url"},
            {"a space in the path prefix",
             {.api_key = test::secret_key, .path_prefix = "/a b"},
             "path_prefix"},
            {"a line break in the responses path",
             {.api_key = test::secret_key, .responses_path = "/v1\r\nX: 1"},
             "responses_path"},
            {"a responses path without its leading slash",
             {.api_key = test::secret_key, .responses_path = "v1/responses"},
             "responses_path"},
            {"a line break in the user agent",
             {.api_key = test::secret_key, .user_agent = "agent\nX-Injected: 1"},
             "user_agent"},
        };
        for (const Case& each : cases) {
            CAPTURE(each.name);
            asio::io_context io;
            px::Client client(io.get_executor(), each.options);
            REQUIRE(client.configuration_error());
            CHECK(client.configuration_error()->kind == px::ErrorKind::invalid_argument);
            CHECK(client.configuration_error()->message.find(each.named_in_message) != std::string::npos);
        }
        asio::io_context io;
        px::Client spaced_agent(io.get_executor(),
                                {.api_key = test::secret_key, .user_agent = "my service/1.0 (ops team)"});
        CHECK_FALSE(spaced_agent.configuration_error());
    }
}
