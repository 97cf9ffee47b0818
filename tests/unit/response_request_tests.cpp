// Writing an Agent API create: exactly the members set, each under its wire name and in its wire shape,
// and the checks made before anything is sent.
#include <perplexity/detail/request.hpp>
#include <perplexity/json.hpp>

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace response_request_tests {

namespace px = perplexity;
namespace json = boost::json;

/// The body a create sends for `request`, compared as JSON with `expected`.
void check_body(const px::ResponseRequest& request, std::string_view expected) {
    const json::object body = px::create_response_body(request);
    CAPTURE(json::serialize(body));
    CHECK(json::value(body) == json::parse(expected));
}

/// The message of the Error check_response_create gives `request`; fails the test when there is none.
std::string refusal_of(const px::ResponseRequest& request) {
    const std::optional<px::Error> error = px::detail::check_response_create(request);
    REQUIRE(error.has_value());
    CHECK(error->kind == px::ErrorKind::invalid_argument);
    CHECK(error->http_status == 0);
    return error->message;
}

px::ResponseRequest minimal() {
    return {.input = "What is the Milky Way?", .preset = "medium"};
}

TEST_SUITE("agent requests") {
    TEST_CASE("a request with only input and preset sends exactly those and background") {
        const json::object body = px::create_response_body(minimal());
        CHECK(body.size() == 3);
        CHECK(json::value(body) ==
              json::parse(R"({"input":"What is the Milky Way?","preset":"medium","background":true})"));
        // `background` is the Client's, not the request's: value_from alone does not write it.
        CHECK(json::value_from(minimal()) ==
              json::parse(R"({"input":"What is the Milky Way?","preset":"medium"})"));

        check_body({.input = "q", .model = "perplexity/sonar"},
                   R"({"input":"q","model":"perplexity/sonar","background":true})");
        check_body({.input = "q", .models = {"openai/gpt-5.1", "perplexity/sonar"}},
                   R"({"input":"q","models":["openai/gpt-5.1","perplexity/sonar"],"background":true})");
    }

    TEST_CASE("every typed member under its wire name and in its wire shape") {
        px::ResponseRequest request{
            .input = "q",
            .model = "openai/gpt-5.1",
            .models = {"perplexity/sonar"},
            .preset = "high",
            .instructions = "Answer briefly.",
            .max_output_tokens = 512,
            .max_steps = 7,
            .reasoning_effort = "xhigh",
            .response_format =
                json::parse(R"({"type":"json_schema","json_schema":{"name":"a","schema":{}}})").as_object(),
            .tools = {px::FetchUrlTool{}},
            .language_preference = "fr",
            .previous_response_id = "resp_prev",
            .store = true,
            .temperature = 0.5,
            .top_p = 0.25,
        };
        check_body(request, R"({
            "input": "q", "model": "openai/gpt-5.1", "models": ["perplexity/sonar"], "preset": "high",
            "instructions": "Answer briefly.", "max_output_tokens": 512, "max_steps": 7,
            "reasoning": {"effort": "xhigh"},
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}},
            "tools": [{"type": "fetch_url"}], "language_preference": "fr",
            "previous_response_id": "resp_prev", "store": true, "temperature": 0.5, "top_p": 0.25,
            "background": true})");

        const json::object body = px::create_response_body(request);
        CHECK(body.at("max_steps").is_int64());
        CHECK(body.at("temperature").is_double());
        CHECK_FALSE(body.contains("reasoning_effort"));
        CHECK_FALSE(body.contains("extra_fields"));
    }

    TEST_CASE("reasoning effort is sent nested, and only when set") {
        px::ResponseRequest request = minimal();
        request.reasoning_effort = "minimal";
        CHECK(px::create_response_body(request).at("reasoning") == json::parse(R"({"effort":"minimal"})"));
        CHECK_FALSE(px::create_response_body(minimal()).contains("reasoning"));
    }

    TEST_CASE("web_search writes only the filters and options set") {
        px::ResponseRequest request = minimal();
        request.tools = {
            px::WebSearchTool{},
            px::WebSearchTool{.filters = px::SearchFilters{.search_recency_filter = "week"}},
            px::WebSearchTool{.filters =
                                  px::SearchFilters{.search_domain_filter = {"nasa.gov", "-reddit.com"}}},
            px::WebSearchTool{
                .filters =
                    px::SearchFilters{
                        .search_domain_filter = {"esa.int"},
                        .search_recency_filter = "month",
                        .search_after_date_filter = "1/1/2025",
                        .search_before_date_filter = "6/1/2025",
                        .last_updated_after_filter = "2/1/2025",
                        .last_updated_before_filter = "5/1/2025",
                    },
                .search_context_size = "high",
                .user_location = json::parse(R"({"country":"FR","city":"Paris"})").as_object(),
                .max_tokens = 4000,
                .max_tokens_per_page = 1000,
            },
            px::WebSearchTool{.search_context_size = "low"},
        };
        const json::value tools = px::create_response_body(request).at("tools");
        CHECK(tools == json::parse(R"([
            {"type": "web_search"},
            {"type": "web_search", "filters": {"search_recency_filter": "week"}},
            {"type": "web_search", "filters": {"search_domain_filter": ["nasa.gov", "-reddit.com"]}},
            {"type": "web_search",
             "filters": {"search_domain_filter": ["esa.int"], "search_recency_filter": "month",
                         "search_after_date_filter": "1/1/2025", "search_before_date_filter": "6/1/2025",
                         "last_updated_after_filter": "2/1/2025", "last_updated_before_filter": "5/1/2025"},
             "search_context_size": "high", "user_location": {"country": "FR", "city": "Paris"},
             "max_tokens": 4000, "max_tokens_per_page": 1000},
            {"type": "web_search", "search_context_size": "low"}
        ])"));
    }

    TEST_CASE("fetch_url, function and raw tools") {
        px::ResponseRequest request = minimal();
        request.tools = {
            px::FetchUrlTool{},
            px::FetchUrlTool{.max_urls = 3},
            px::FunctionTool{.name = "get_weather"},
            px::FunctionTool{
                .name = "lookup_order",
                .description = "Finds an order by its number.",
                .parameters = json::parse(
                    R"({"type":"object","properties":{"order":{"type":"string"}},"required":["order"]})"),
                .strict = true,
            },
            px::FunctionTool{.name = "loose", .strict = false},
            json::parse(R"({"type":"people_search","max_results":5})").as_object(),
            json::parse(R"({"type":"mcp","server_label":"docs","server_url":"https://mcp.example"})")
                .as_object(),
        };
        const json::value tools = px::create_response_body(request).at("tools");
        CHECK(tools == json::parse(R"([
            {"type": "fetch_url"},
            {"type": "fetch_url", "max_urls": 3},
            {"type": "function", "name": "get_weather"},
            {"type": "function", "name": "lookup_order", "description": "Finds an order by its number.",
             "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
             "strict": true},
            {"type": "function", "name": "loose", "strict": false},
            {"type": "people_search", "max_results": 5},
            {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example"}
        ])"));
    }

    TEST_CASE("input items: messages of text or parts, function call outputs, raw items") {
        px::ResponseRequest request = minimal();
        request.input = std::vector<px::InputItem>{
            px::InputMessage{.role = "system", .content = "Be brief."},
            px::InputMessage{.content =
                                 std::vector<px::InputPart>{
                                     {.text = "What is in this picture?"},
                                     {.type = "input_image", .image_url = "https://example.org/sky.png"},
                                 }},
            json::parse(
                R"({"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"})")
                .as_object(),
            px::FunctionCallOutput{.call_id = "call_1", .output = R"({"temp":21})"},
            px::FunctionCallOutput{.call_id = "call_2", .output = "ok", .name = "lookup_order"},
            px::InputMessage{.role = "developer", .content = std::vector<px::InputPart>{}},
        };
        const json::value input = px::create_response_body(request).at("input");
        CHECK(input == json::parse(R"([
            {"type": "message", "role": "system", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is in this picture?"},
                {"type": "input_image", "image_url": "https://example.org/sky.png"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "{\"temp\":21}"},
            {"type": "function_call_output", "call_id": "call_2", "output": "ok", "name": "lookup_order"},
            {"type": "message", "role": "developer", "content": []}
        ])"));
        // A default message is a user's, with empty text.
        request.input = std::vector<px::InputItem>{px::InputMessage{}};
        CHECK(px::create_response_body(request).at("input") ==
              json::parse(R"([{"type":"message","role":"user","content":""}])"));
    }

    TEST_CASE("extra_fields are merged last, over the typed members") {
        px::ResponseRequest request = minimal();
        request.instructions = "typed";
        request.extra_fields =
            json::parse(R"({"instructions":"extra","preset":"xhigh","new_option":{"a":[1,2]},)"
                        R"("stream":false})")
                .as_object();
        check_body(request, R"({"input":"What is the Milky Way?","preset":"xhigh","instructions":"extra",
            "new_option":{"a":[1,2]},"stream":false,"background":true})");

        // The Client polls what it creates, so a create is always a background one.
        request.extra_fields["background"] = false;
        CHECK(px::create_response_body(request).at("background") == true);
        CHECK(json::value_from(request).at("background") == false);
    }

    TEST_CASE("check_response_create accepts a sound request") {
        CHECK_FALSE(px::detail::check_response_create(minimal()));
        CHECK_FALSE(px::detail::check_response_create({.input = "q", .model = "perplexity/sonar"}));
        CHECK_FALSE(
            px::detail::check_response_create({.input = "q", .models = {"a/1", "a/2", "a/3", "a/4", "a/5"}}));
        px::ResponseRequest edges = minimal();
        edges.max_steps = 1;
        edges.max_output_tokens = 1;
        edges.store = true;
        CHECK_FALSE(px::detail::check_response_create(edges));
        edges.max_steps = 100;
        CHECK_FALSE(px::detail::check_response_create(edges));
        edges.input = std::vector<px::InputItem>{px::InputMessage{.content = "hi"}};
        CHECK_FALSE(px::detail::check_response_create(edges));
    }

    TEST_CASE("check_response_create refuses, naming the member") {
        const auto refused = [](px::ResponseRequest request, std::string_view member) {
            CAPTURE(member);
            const std::string message = refusal_of(request);
            CAPTURE(message);
            CHECK(message.find(member) != std::string::npos);
        };
        refused({.input = "", .preset = "medium"}, "input");
        refused({.input = std::vector<px::InputItem>{}, .preset = "medium"}, "input");
        refused({.input = "q"}, "model");
        refused({.input = "q"}, "preset");
        refused({.input = "q", .models = {"a/1", "a/2", "a/3", "a/4", "a/5", "a/6"}}, "models");
        refused({.input = "q", .model = ""}, "model");
        refused({.input = "q", .preset = ""}, "preset");

        const auto with = [](auto change) {
            px::ResponseRequest request = minimal();
            change(request);
            return request;
        };
        refused(with([](px::ResponseRequest& r) { r.max_steps = 0; }), "max_steps");
        refused(with([](px::ResponseRequest& r) { r.max_steps = 101; }), "max_steps");
        refused(with([](px::ResponseRequest& r) { r.max_steps = -1; }), "max_steps");
        refused(with([](px::ResponseRequest& r) { r.max_output_tokens = 0; }), "max_output_tokens");
        refused(with([](px::ResponseRequest& r) { r.max_output_tokens = -5; }), "max_output_tokens");
        refused(with([](px::ResponseRequest& r) { r.store = false; }), "store");
    }
}

}  // namespace response_request_tests
