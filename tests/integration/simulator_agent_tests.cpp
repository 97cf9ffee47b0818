// The simulator's Agent API (/v1/responses), checked on its own: the request logic through the Api class
// without sockets, and the fault operations and counters through a running Simulator and a bare Beast
// client. Independent of the library, so it also pins the wire behaviour clients are tested against.
#include <perplexity_sim/simulator.hpp>

#include <doctest/doctest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace sim_agent_test {

namespace http = boost::beast::http;
namespace json = boost::json;
using perplexity_sim::SimulatorOptions;
using perplexity_sim::detail::Api;

struct Answer {
    unsigned status = 0;
    json::value body;
    std::string allow;
};

inline http::request<http::string_body> make_request(http::verb verb, std::string target, std::string body,
                                                     std::string key = "sim-key") {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "localhost");
    req.set(http::field::authorization, "Bearer " + key);
    if (!body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = std::move(body);
    }
    req.prepare_payload();
    return req;
}

inline Answer call(Api& api, http::verb verb, std::string target, std::string body = "",
                   std::string key = "sim-key") {
    const auto res = api.handle(make_request(verb, std::move(target), std::move(body), std::move(key)));
    Answer answer;
    answer.status = static_cast<unsigned>(res.result_int());
    answer.body = json::parse(res.body());
    if (const auto it = res.find(http::field::allow); it != res.end()) {
        answer.allow = std::string(it->value());
    }
    return answer;
}

inline Answer create(Api& api, const std::string& body) {
    return call(api, http::verb::post, "/v1/responses", body);
}

inline Answer retrieve(Api& api, const std::string& id) {
    return call(api, http::verb::get, "/v1/responses/" + id);
}

inline Answer cancel(Api& api, const std::string& id) {
    return call(api, http::verb::post, "/v1/responses/" + id + "/cancel");
}

inline std::string id_of(const Answer& answer) {
    return std::string(answer.body.at("id").as_string());
}

inline std::string status_of(const Answer& answer) {
    return std::string(answer.body.at("status").as_string());
}

// The 400 of a refused create, returning its param ("" when there is none).
inline std::string refused_param(Api& api, const std::string& body) {
    const Answer answer = create(api, body);
    CHECK_MESSAGE(answer.status == 400, body);
    if (answer.status != 400) {
        return "<not refused>";
    }
    const auto& error = answer.body.at("error").as_object();
    CHECK(error.at("type") == "invalid_request");
    CHECK(error.at("code") == 400);
    const auto* param = error.if_contains("param");
    return param == nullptr ? std::string{} : std::string(param->as_string());
}

// Retrieves until the status is no longer queued or in_progress, at most `limit` times.
inline Answer run_to_end(Api& api, const std::string& id, int limit = 10) {
    Answer answer;
    for (int i = 0; i < limit; ++i) {
        answer = retrieve(api, id);
        const std::string status = status_of(answer);
        if (status != "queued" && status != "in_progress") {
            break;
        }
    }
    return answer;
}

constexpr const char* background_medium = R"({"background": true, "preset": "medium", "input": )";

inline std::string background_create(const std::string& input_json, const std::string& extra = "") {
    return std::string(background_medium) + input_json + extra + "}";
}

// One request over a real socket against `simulator`, driving `io` until it is answered or dropped.
inline std::optional<Answer> over_socket(boost::asio::io_context& io, perplexity_sim::Simulator& simulator,
                                         http::verb verb, std::string target, std::string body = "") {
    namespace asio = boost::asio;
    std::optional<Answer> answer;
    bool done = false;
    auto request = make_request(verb, std::move(target), std::move(body));
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            boost::beast::tcp_stream stream(co_await asio::this_coro::executor);
            boost::system::error_code ec;
            const asio::ip::tcp::endpoint endpoint{asio::ip::make_address("127.0.0.1"), simulator.port()};
            co_await stream.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
            if (!ec) {
                co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
            }
            if (!ec) {
                boost::beast::flat_buffer buffer;
                http::response<http::string_body> res;
                co_await http::async_read(stream, buffer, res, asio::redirect_error(asio::use_awaitable, ec));
                if (!ec) {
                    answer.emplace();
                    answer->status = static_cast<unsigned>(res.result_int());
                    answer->body = json::parse(res.body(), ec);
                }
            }
            done = true;
        },
        asio::detached);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < give_up) {
        io.run_one_for(std::chrono::milliseconds(100));
    }
    REQUIRE(done);
    return answer;
}

// Inside the helpers' namespace, so the unity build's other test files cannot make a name ambiguous.
TEST_SUITE("simulator agent api") {
    TEST_CASE("agent: a background create is queued, then runs to completed on retrieves") {
        SimulatorOptions options;
        options.answer_bytes = 600;
        Api api(options);
        const Answer created = create(api, background_create(R"("How many moons has Mars?")",
                                                             R"(, "tools": [{"type": "web_search"}])"));
        REQUIRE(created.status == 200);
        CHECK(status_of(created) == "queued");
        const std::string id = id_of(created);
        CHECK(id.starts_with("resp_"));
        CHECK(id.size() > 5);
        CHECK(created.body.at("object") == "response");
        CHECK(created.body.at("model") == "openai/gpt-5.1");
        CHECK(created.body.at("background") == true);
        CHECK(created.body.at("created_at").is_int64());
        CHECK(created.body.at("output").as_array().empty());
        CHECK(api.responses_created() == 1);

        // created_polls = in_progress_polls = 1, as for the Sonar jobs.
        CHECK(status_of(retrieve(api, id)) == "queued");
        CHECK(status_of(retrieve(api, id)) == "in_progress");
        const Answer done = retrieve(api, id);
        REQUIRE(status_of(done) == "completed");
        const auto& output = done.body.at("output").as_array();
        REQUIRE(output.size() == 2);
        CHECK(output[0].at("type") == "search_results");
        CHECK(output[0].at("results").as_array().size() == 3);
        CHECK(output[0].at("queries").as_array().at(0) == "How many moons has Mars?");
        const auto& message = output[1].as_object();
        CHECK(message.at("type") == "message");
        CHECK(message.at("role") == "assistant");
        CHECK(message.at("status") == "completed");
        CHECK(message.at("id").as_string().starts_with("msg_"));
        const auto& part = message.at("content").as_array().at(0).as_object();
        CHECK(part.at("type") == "output_text");
        const std::string text(part.at("text").as_string());
        CHECK(text.find("How many moons has Mars?") != std::string::npos);
        CHECK(text.size() == 600);
        const auto& annotation = part.at("annotations").as_array().at(0).as_object();
        CHECK(annotation.at("type") == "url_citation");
        CHECK(text.substr(static_cast<std::size_t>(annotation.at("start_index").as_int64()), 3) == "[1]");
        const auto& usage = done.body.at("usage").as_object();
        CHECK(usage.at("total_tokens").as_int64() ==
              usage.at("input_tokens").as_int64() + usage.at("output_tokens").as_int64());
        CHECK(usage.at("cost").at("currency") == "USD");
        CHECK(usage.at("tool_calls_details").at("web_search").at("invocation").as_int64() > 0);
        CHECK_FALSE(done.body.as_object().contains("error"));
        // Final: later retrieves keep showing it.
        CHECK(status_of(retrieve(api, id)) == "completed");
    }

    TEST_CASE(
        "without answer_bytes, answers are a few sentences citing their sources, thinking first only "
        "on a Sonar model that reasons") {
        Api api(SimulatorOptions{});
        const auto sonar_content = [&](const std::string& model) {
            const Answer created =
                call(api, http::verb::post, "/async/chat/completions",
                     R"({"request": {"model": ")" + model +
                         R"(", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}})");
            Answer job;
            for (int i = 0; i < 5; ++i) {
                job = call(api, http::verb::get, "/async/chat/completions/" + id_of(created));
                if (job.body.at("status") == "COMPLETED") {
                    break;
                }
            }
            REQUIRE(job.body.at("status") == "COMPLETED");
            const auto& response = job.body.at("response");
            CHECK(response.at("citations").as_array().size() == 3);
            CHECK(response.at("search_results").as_array().size() == 3);
            CHECK(response.at("search_results").at(2).at("url") == response.at("citations").at(2));
            return std::string(response.at("choices").at(0).at("message").at("content").as_string());
        };
        const std::string deep = sonar_content("sonar-deep-research");
        CHECK(deep.starts_with("<think>The user asks: \"Why is the sky blue?\""));
        const std::string answer = deep.substr(deep.find("</think>\n\n") + 10);
        CHECK(answer.starts_with("Simulated answer to \"Why is the sky blue?\": "));
        CHECK(answer.find("[3]") != std::string::npos);
        CHECK(answer.find("pads the simulated answer") == std::string::npos);
        CHECK(answer.size() < 600);
        const std::string plain = sonar_content("sonar");
        CHECK(plain == answer);

        const Answer done =
            run_to_end(api, id_of(create(api, background_create(R"("Why is the sky blue?")",
                                                                R"(, "tools": [{"type": "web_search"}])"))));
        REQUIRE(status_of(done) == "completed");
        const auto& part = done.body.at("output").at(1).at("content").at(0);
        const std::string text(part.at("text").as_string());
        CHECK(text == answer);
        const auto& annotations = part.at("annotations").as_array();
        REQUIRE(annotations.size() == 3);
        for (std::size_t i = 0; i < annotations.size(); ++i) {
            const auto start = static_cast<std::size_t>(annotations[i].at("start_index").as_int64());
            CHECK(text.substr(start, 3) == "[" + std::to_string(i + 1) + "]");
        }
    }

    TEST_CASE("agent: a create without background completes at once; model and models are served as named") {
        Api api(SimulatorOptions{});
        const Answer answer = create(api, R"({"model": "perplexity/sonar", "input": "hi"})");
        REQUIRE(answer.status == 200);
        CHECK(status_of(answer) == "completed");
        CHECK(answer.body.at("model") == "perplexity/sonar");
        CHECK(answer.body.at("background") == false);
        CHECK(answer.body.at("output").as_array().size() == 1);  // no web_search tool: no search_results
        CHECK_FALSE(answer.body.at("usage").as_object().contains("tool_calls_details"));
        const Answer fallback =
            create(api, R"({"models": ["openai/gpt-5.1", "perplexity/sonar"], "input": "hi"})");
        CHECK(fallback.body.at("model") == "openai/gpt-5.1");
        const Answer alias = call(api, http::verb::post, "/v1/agent", R"({"preset": "fast", "input": "hi"})");
        CHECK(alias.status == 200);
        CHECK(status_of(alias) == "completed");
    }

    TEST_CASE("agent: unknown fields are refused at any depth, naming the field") {
        Api api(SimulatorOptions{});
        const Answer top = create(api, R"({"preset": "fast", "input": "x", "bogus_field": 1})");
        CHECK(top.status == 400);
        CHECK(json::serialize(top.body) ==
              R"({"error":{"message":"invalid request body: json: unknown field \"bogus_field\"",)"
              R"("type":"invalid_request","code":400,"param":"bogus_field"}})");
        const std::string head = R"({"preset": "fast", )";
        CHECK(refused_param(api, head + R"("input": "x", "tools": [{"type": "web_search", "extra": 1}]})") ==
              "extra");
        CHECK(refused_param(api, head + R"("input": "x", "tools": [{"type": "web_search",
              "filters": {"search_domain_filter": ["a.org"], "domain": 1}}]})") == "domain");
        CHECK(refused_param(api, head + R"("input": "x", "tools": [{"type": "fetch_url", "max_url": 2}]})") ==
              "max_url");
        CHECK(refused_param(api, head + R"("input": "x", "tools": [{"type": "function", "name": "f",
              "params": {}}]})") == "params");
        CHECK(refused_param(api, head + R"("input": "x", "reasoning": {"effort": "low", "budget": 1}})") ==
              "budget");
        CHECK(refused_param(api, head + R"("input": "x", "response_format": {"type": "json_schema",
              "schema": {}}})") == "schema");
        CHECK(refused_param(api, head + R"("input": [{"type": "message", "role": "user", "content": "x",
              "name": "me"}]})") == "name");
        CHECK(refused_param(api, head + R"("input": [{"type": "message", "role": "user",
              "content": [{"type": "input_text", "text": "x", "lang": "en"}]}]})") == "lang");
        CHECK(refused_param(api, head + R"("input": [{"type": "function_call_output", "call_id": "c",
              "output": "o", "extra": true}]})") == "extra");
        // What is documented as free-form stays free-form.
        const Answer free_form = create(api, head + R"("input": "x",
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"any": 1}}},
            "tools": [{"type": "web_search", "user_location": {"country": "FR", "whatever": 1},
                       "filters": {"search_recency_filter": "week"}, "search_context_size": "high"},
                      {"type": "function", "name": "f", "parameters": {"type": "object", "x-custom": 1},
                       "strict": true, "description": "d"},
                      {"type": "fetch_url", "max_urls": 3}]})");
        CHECK(free_form.status == 200);
    }

    TEST_CASE("agent: the create's other checks answer 400 with the field") {
        Api api(SimulatorOptions{});
        CHECK(refused_param(api, R"({"preset": "fast"})") == "input");
        CHECK(refused_param(api, R"({"input": "x"})") == "model");
        CHECK(refused_param(api, R"({"input": "x", "models": ["a/1", "a/2", "a/3", "a/4", "a/5", "a/6"]})") ==
              "models");
        CHECK(refused_param(api, R"({"input": "x", "preset": "ultra"})") == "preset");
        CHECK(refused_param(api, R"({"input": "x", "preset": "fast", "max_steps": 0})") == "max_steps");
        CHECK(refused_param(api, R"({"input": "x", "preset": "fast", "max_steps": 101})") == "max_steps");
        CHECK(refused_param(api, R"({"input": "x", "preset": "fast", "stream": true, "background": true})") ==
              "stream");
        for (const char* builtin :
             {"web_search", "fetch_url", "sandbox", "people_search", "finance_search", "mcp"}) {
            CHECK(
                refused_param(
                    api, std::string(
                             R"({"input": "x", "preset": "fast", "tools": [{"type": "function", "name": ")") +
                             builtin + "\"}]}") == "name");
        }
        CHECK(refused_param(api, R"({"input": "x", "model": 5})") == "model");
        CHECK(refused_param(api, "[1, 2]").empty());
        CHECK(refused_param(api, "{not json").empty());
        for (const char* preset : {"fast", "low", "medium", "high", "xhigh", "deep-research"}) {
            CHECK(create(api, std::string(R"({"input": "x", "preset": ")") + preset + "\"}").status == 200);
        }
        CHECK(create(api, R"({"input": "x", "preset": "fast", "max_steps": 100})").status == 200);
        CHECK(api.responses_created() == 7);
    }

    TEST_CASE("agent: failed, incomplete and unknown statuses") {
        Api api(SimulatorOptions{});
        const Answer failed = run_to_end(api, id_of(create(api, background_create(R"("please [[fail]]")"))));
        CHECK(failed.status == 200);
        REQUIRE(status_of(failed) == "failed");
        CHECK_FALSE(failed.body.at("error").at("message").as_string().empty());
        CHECK_FALSE(failed.body.as_object().contains("usage"));

        const Answer incomplete =
            run_to_end(api, id_of(create(api, background_create(R"("long [[incomplete]]")"))));
        REQUIRE(status_of(incomplete) == "incomplete");
        CHECK(incomplete.body.at("incomplete_details").at("reason") == "max_output_tokens");

        const std::string odd = id_of(create(api, background_create(R"("hold [[status:paused]]")")));
        CHECK(status_of(run_to_end(api, odd)) == "paused");
        CHECK(status_of(retrieve(api, odd)) == "paused");
        // Not final: it can still be cancelled.
        CHECK(cancel(api, odd).status == 200);
        CHECK(status_of(retrieve(api, odd)) == "cancelled");

        SimulatorOptions unlucky;
        unlucky.failure_ratio = 1.0;
        Api always_failing(unlucky);
        CHECK(status_of(run_to_end(always_failing,
                                   id_of(create(always_failing, background_create(R"("x")"))))) == "failed");
    }

    TEST_CASE("agent: a function tool ends in requires_action; its output continues the conversation") {
        Api api(SimulatorOptions{});
        const std::string tools = R"(, "tools": [{"type": "function", "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])";
        const std::string id = id_of(create(api, background_create(R"("Weather in Paris?")", tools)));
        const Answer waiting = run_to_end(api, id);
        REQUIRE(status_of(waiting) == "requires_action");
        const auto& call = waiting.body.at("output").as_array().at(0).as_object();
        CHECK(call.at("type") == "function_call");
        CHECK(call.at("name") == "get_weather");
        CHECK(call.at("status") == "completed");
        const std::string call_id(call.at("call_id").as_string());
        CHECK_FALSE(call_id.empty());
        CHECK(json::parse(call.at("arguments").as_string()).is_object());
        CHECK(cancel(api, id).status == 400);  // the run is over: it is the caller's turn

        const Answer next =
            create(api, background_create(R"([{"type": "function_call_output", "call_id": ")" + call_id +
                                              R"(", "output": "{\"celsius\": 21}"}])",
                                          tools + R"(, "previous_response_id": ")" + id + "\""));
        REQUIRE(next.status == 200);
        CHECK(json::value_to<std::string>(next.body.at("previous_response_id")) == id);
        CHECK(status_of(run_to_end(api, id_of(next))) == "completed");
        // An unknown previous_response_id is only echoed back.
        CHECK(create(api, R"({"preset": "fast", "input": "x", "previous_response_id": "resp_unknown"})")
                  .body.at("previous_response_id") == "resp_unknown");
    }

    TEST_CASE("agent: cancel answers 200, 400 or 404, and the next retrieve shows cancelled") {
        Api api(SimulatorOptions{});
        const std::string id = id_of(create(api, background_create(R"("x")")));
        CHECK(status_of(retrieve(api, id)) == "queued");
        const Answer accepted = cancel(api, id);
        CHECK(accepted.status == 200);
        CHECK(json::serialize(accepted.body) == R"({"response_id":")" + id + R"(","status":"cancelling"})");
        CHECK(cancel(api, id).status == 200);  // still cancelling: acknowledged again, counted once
        CHECK(api.responses_cancelled() == 1);
        const Answer cancelled = retrieve(api, id);
        CHECK(status_of(cancelled) == "cancelled");
        CHECK(cancelled.body.at("error").at("message") == "response was cancelled");
        CHECK(cancelled.body.at("error").at("type") == "cancelled");
        CHECK(status_of(retrieve(api, id)) == "cancelled");

        const Answer again = cancel(api, id);
        CHECK(again.status == 400);
        CHECK(json::serialize(again.body) == R"({"error":{"message":"response )" + id +
                                                 R"( is already cancelled and cannot be cancelled",)"
                                                 R"("type":"invalid_request","code":400}})");
        const std::string done = id_of(create(api, R"({"preset": "fast", "input": "x"})"));
        CHECK(cancel(api, done).status == 400);

        const Answer unknown = cancel(api, "resp_nope");
        CHECK(unknown.status == 404);
        CHECK(json::serialize(unknown.body) ==
              R"({"error":{"message":"response resp_nope not found","type":"not_found","code":404}})");
        const Answer unknown_get = retrieve(api, "resp_nope");
        CHECK(unknown_get.status == 404);
        CHECK(unknown_get.body == unknown.body);
    }

    TEST_CASE("agent: cancel_polls keeps the running status for that many retrieves") {
        SimulatorOptions options;
        options.cancel_polls = 2;
        Api api(options);
        const std::string id = id_of(create(api, background_create(R"("x")")));
        retrieve(api, id);
        CHECK(status_of(retrieve(api, id)) == "in_progress");
        CHECK(cancel(api, id).status == 200);
        CHECK(status_of(retrieve(api, id)) == "in_progress");
        CHECK(status_of(retrieve(api, id)) == "in_progress");
        CHECK(status_of(retrieve(api, id)) == "cancelled");
    }

    TEST_CASE("agent: store false hides the response from retrieve and cancel") {
        Api api(SimulatorOptions{});
        const Answer created = create(api, background_create(R"("x")", R"(, "store": false)"));
        REQUIRE(created.status == 200);
        CHECK(created.body.at("store") == false);
        CHECK(retrieve(api, id_of(created)).status == 404);
        CHECK(cancel(api, id_of(created)).status == 404);
        CHECK(api.responses_created() == 1);
        CHECK(create(api, background_create(R"("x")", R"(, "store": true)")).body.at("store") == true);
    }

    TEST_CASE("agent: routes, methods, ids and the key") {
        Api api(SimulatorOptions{});
        const Answer wrong_get = call(api, http::verb::get, "/v1/responses");
        CHECK(wrong_get.status == 405);
        CHECK(wrong_get.allow == "POST");
        const std::string id = id_of(create(api, background_create(R"("x")")));
        const Answer wrong_delete = call(api, http::verb::delete_, "/v1/responses/" + id);
        CHECK(wrong_delete.status == 405);
        CHECK(wrong_delete.allow == "GET");
        CHECK(call(api, http::verb::get, "/v1/responses/" + id + "/cancel").status == 405);
        CHECK(call(api, http::verb::get, "/v1/responses/" + id + "/other").status == 404);
        // The id is percent-decoded like the Sonar get's.
        std::string encoded = "%72" + id.substr(1);
        CHECK(call(api, http::verb::get, "/v1/responses/" + encoded).status == 200);
        CHECK(call(api, http::verb::get, "/v1/responses/" + id, "", "wrong").status == 401);
        CHECK(call(api, http::verb::post, "/v1/responses", R"({"preset": "fast", "input": "x"})", "wrong")
                  .status == 401);
        // The Sonar side still answers as before.
        const Answer sonar =
            call(api, http::verb::post, "/async/chat/completions",
                 R"({"request": {"model": "sonar", "messages": [{"role": "user", "content": "x"}]}})");
        CHECK(sonar.status == 200);
        CHECK(sonar.body.at("status") == "CREATED");
        CHECK(api.jobs_created() == 1);
        CHECK(api.responses_created() == 1);
    }

    TEST_CASE("agent: faults aim at one Agent API operation, and the counters see each") {
        boost::asio::io_context io;
        SimulatorOptions options;
        options.https = false;
        options.api_key = "sim-key";
        perplexity_sim::Simulator simulator(io.get_executor(), options);
        simulator.start();
        using perplexity_sim::Fault;
        using perplexity_sim::Operation;
        simulator.inject({.operation = Operation::cancel_response, .status = 503});
        simulator.inject({.operation = Operation::retrieve_response, .status = 502});
        simulator.inject({.operation = Operation::create_response, .action = Fault::Action::drop_handled});

        // The create's answer is lost, but the run was made.
        CHECK_FALSE(
            over_socket(io, simulator, http::verb::post, "/v1/responses", background_create(R"("x")")));
        CHECK(simulator.stats().responses_created == 1);
        auto created =
            over_socket(io, simulator, http::verb::post, "/v1/responses", background_create(R"("x")"));
        REQUIRE(created);
        CHECK(created->status == 200);
        const std::string id = id_of(*created);
        // A Sonar get takes no Agent fault.
        CHECK(over_socket(io, simulator, http::verb::get, "/async/chat/completions/nope")->status == 404);
        CHECK(over_socket(io, simulator, http::verb::get, "/v1/responses/" + id)->status == 502);
        CHECK(over_socket(io, simulator, http::verb::get, "/v1/responses/" + id)->status == 200);
        CHECK(over_socket(io, simulator, http::verb::post, "/v1/responses/" + id + "/cancel")->status == 503);
        CHECK(over_socket(io, simulator, http::verb::post, "/v1/responses/" + id + "/cancel")->status == 200);
        CHECK(status_of(*over_socket(io, simulator, http::verb::get, "/v1/responses/" + id)) == "cancelled");
        CHECK(simulator.pending_faults() == 0);

        const auto stats = simulator.stats();
        CHECK(stats.response_creates_received == 2);
        CHECK(stats.retrieves_received == 3);
        CHECK(stats.cancels_received == 2);
        CHECK(stats.responses_created == 2);
        CHECK(stats.responses_cancelled == 1);
        CHECK(stats.gets_received == 1);
        CHECK(stats.creates_received == 0);
        CHECK(stats.jobs_created == 0);
        CHECK(stats.faults_applied == 3);
        simulator.stop();
        io.poll();
    }
}

}  // namespace sim_agent_test
