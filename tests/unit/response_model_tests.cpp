// The Agent API's responses as values: decoding every documented shape, the strictness the contract asks
// for, the round trip, the helpers, the cancel acknowledgement and the error envelope's `param`.
#include <perplexity/async.hpp>
#include <perplexity/detail/error_body.hpp>

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace response_model_tests {

namespace px = perplexity;
namespace json = boost::json;

px::Response parsed(std::string_view body) {
    auto response = px::parse_response(body);
    REQUIRE_MESSAGE(response.has_value(), px::to_string(response.error()));
    return std::move(*response);
}

px::Error decode_error(std::string_view body) {
    auto response = px::parse_response(body);
    REQUIRE_FALSE(response.has_value());
    CHECK(response.error().kind == px::ErrorKind::decode);
    return response.error();
}

/// A small, valid body with `members` laid over it (a null value removes the member).
std::string body_with(std::string_view members = "{}") {
    json::object body = json::parse(R"({"id":"resp_base","object":"response","created_at":1760000000,)"
                                    R"("model":"perplexity/sonar","status":"completed","output":[]})")
                            .as_object();
    const json::value changes = json::parse(members);
    for (const auto& [key, value] : changes.as_object()) {
        if (value.is_null()) {
            body.erase(key);
        } else {
            body[key] = value;
        }
    }
    return json::serialize(body);
}

/// The body with its output set to `items` (a JSON array).
std::string body_with_output(std::string_view items) {
    return body_with(std::string(R"({"output":)") + std::string(items) + "}");
}

/// Written, read back, and equal; and written again the same.
void check_round_trip(const px::Response& response) {
    const std::string encoded = px::to_json_string(response);
    CAPTURE(encoded);
    const px::Response again = parsed(encoded);
    CHECK(again == response);
    CHECK(json::value_from(again) == json::value_from(response));
}

template <class Item>
const Item& item_as(const px::Response& response, std::size_t index) {
    REQUIRE(index < response.output.size());
    const auto* item = std::get_if<Item>(&response.output[index]);
    REQUIRE(item != nullptr);
    return *item;
}

constexpr std::string_view queued_body =
    R"({"id":"resp_01JQ","object":"response","created_at":1760000000,"model":"openai/gpt-5.1",)"
    R"("status":"queued","output":[],"background":true,"store":true})";

// Every item kind, in an order that interleaves messages with the others, and more than 1 KiB, so it is
// parsed in parse_body's shared arena (the queued body above takes the stack arena).
constexpr std::string_view completed_body = R"({
  "id": "resp_02", "object": "response", "created_at": 1760000100, "model": "openai/gpt-5.1",
  "status": "completed", "background": true, "store": true, "previous_response_id": "resp_01",
  "output": [
    {"type": "search_results", "queries": ["milky way size", "milky way stars"],
     "results": [
       {"title": "Milky Way", "url": "https://example.org/mw", "date": "2025-03-01",
        "last_updated": "2025-06-10", "snippet": "The Milky Way is a barred spiral galaxy.", "source": "web"},
       {"title": "Galaxies", "url": "https://example.org/galaxies"}]},
    {"type": "fetch_url_results",
     "contents": [{"url": "https://example.org/mw", "title": "Milky Way", "snippet": "barred spiral"},
                  {"url": "https://example.org/bare"}]},
    {"type": "mcp_call", "id": "mcp_1", "server_label": "docs", "name": "lookup", "arguments": "{}",
     "output": {"hits": [1, 2.5, null, true, "x"]}},
    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
     "arguments": "{\"city\":\"Paris\"}", "status": "completed", "thought_signature": "sig-1"},
    {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
     "content": [
       {"type": "output_text", "text": "The Milky Way ",
        "annotations": [{"type": "url_citation", "url": "https://example.org/mw", "title": "Milky Way",
                         "start_index": 0, "end_index": 14}, {}]},
       {"type": "refusal", "refusal": "not this part"},
       {"type": "output_text", "text": "is about 100,000 light years across."}]},
    {"type": "unknown", "item_name": "widget", "payload": {"k": "v", "n": [1, 2]}},
    {"type": "message", "id": "msg_2", "role": "assistant", "content": [{"type": "output_text", "text": " Truly."}]}
  ],
  "usage": {"input_tokens": 12, "output_tokens": 34, "total_tokens": 46,
            "input_tokens_details": {"cached_tokens": 2},
            "tool_calls_details": {"web_search": {"invocation": 2}, "fetch_url": {"invocation": 1}},
            "cost": {"currency": "USD", "input_cost": 0.25, "output_cost": 0.5, "total_cost": 1.0,
                     "cache_creation_cost": 0.125, "cache_read_cost": 0.0625, "tool_calls_cost": 0.015625}}
})";

TEST_SUITE("agent responses") {
    TEST_CASE("a queued create answer") {
        const px::Response response = parsed(queued_body);
        CHECK(response.id == "resp_01JQ");
        CHECK(response.status == px::ResponseStatus::queued);
        CHECK(response.status_text == "queued");
        CHECK(response.created_at == 1760000000);
        CHECK(response.model == "openai/gpt-5.1");
        CHECK(response.object == "response");
        CHECK(response.output.empty());
        CHECK(response.background == true);
        CHECK(response.store == true);
        CHECK_FALSE(response.error);
        CHECK_FALSE(response.usage);
        CHECK_FALSE(response.previous_response_id);
        CHECK_FALSE(response.incomplete_details);
        CHECK_FALSE(response.is_final());
        CHECK(response.output_text().empty());
        CHECK(response.function_calls().empty());
        CHECK(response.search_results().empty());
        check_round_trip(response);
        CHECK(json::value_from(response) == json::parse(queued_body));

        CHECK(parsed(body_with(R"({"status":"in_progress"})")).status == px::ResponseStatus::in_progress);
    }

    TEST_CASE("a completed response with every kind of output item") {
        REQUIRE(completed_body.size() > 1024);
        const px::Response response = parsed(completed_body);
        CHECK(response.status == px::ResponseStatus::completed);
        CHECK(response.is_final());
        CHECK(response.previous_response_id == "resp_01");
        REQUIRE(response.output.size() == 7);

        const auto& search = item_as<px::SearchResultsOutput>(response, 0);
        CHECK(search.queries == std::vector<std::string>{"milky way size", "milky way stars"});
        REQUIRE(search.results.size() == 2);
        CHECK(search.results[0] == px::SearchResult{.title = "Milky Way",
                                                    .url = "https://example.org/mw",
                                                    .date = "2025-03-01",
                                                    .last_updated = "2025-06-10",
                                                    .snippet = "The Milky Way is a barred spiral galaxy.",
                                                    .source = "web"});
        CHECK(search.results[1] ==
              px::SearchResult{.title = "Galaxies", .url = "https://example.org/galaxies"});

        const auto& fetched = item_as<px::FetchUrlResultsOutput>(response, 1);
        REQUIRE(fetched.contents.size() == 2);
        CHECK(fetched.contents[0] == px::FetchedPage{.url = "https://example.org/mw",
                                                     .title = "Milky Way",
                                                     .snippet = "barred spiral"});
        CHECK(fetched.contents[1] == px::FetchedPage{.url = "https://example.org/bare"});

        const auto& mcp = item_as<px::OtherOutput>(response, 2);
        CHECK(mcp.type == "mcp_call");
        CHECK(json::value(mcp.raw) == json::parse(completed_body).at("output").at(2));

        const auto& call = item_as<px::FunctionCall>(response, 3);
        CHECK(call == px::FunctionCall{.id = "fc_1",
                                       .call_id = "call_1",
                                       .name = "get_weather",
                                       .arguments = R"({"city":"Paris"})",
                                       .status = "completed",
                                       .thought_signature = "sig-1"});

        const auto& message = item_as<px::OutputMessage>(response, 4);
        CHECK(message.id == "msg_1");
        CHECK(message.role == "assistant");
        CHECK(message.status == "completed");
        REQUIRE(message.content.size() == 3);
        CHECK(message.content[0].type == "output_text");
        CHECK(message.content[0].text == "The Milky Way ");
        REQUIRE(message.content[0].annotations.size() == 2);
        CHECK(message.content[0].annotations[0] == px::Annotation{.type = "url_citation",
                                                                  .url = "https://example.org/mw",
                                                                  .title = "Milky Way",
                                                                  .start_index = 0,
                                                                  .end_index = 14});
        CHECK(message.content[0].annotations[1] == px::Annotation{});
        CHECK(message.content[1].type == "refusal");
        CHECK(message.content[1].text.empty());
        CHECK(message.text() == "The Milky Way is about 100,000 light years across.");

        const auto& unknown = item_as<px::OtherOutput>(response, 5);
        CHECK(unknown.type == "unknown");
        CHECK(json::value(unknown.raw) == json::parse(completed_body).at("output").at(5));

        CHECK(item_as<px::OutputMessage>(response, 6).status == std::nullopt);

        REQUIRE(response.usage);
        const px::ResponseUsage& usage = *response.usage;
        CHECK(usage.input_tokens == 12);
        CHECK(usage.output_tokens == 34);
        CHECK(usage.total_tokens == 46);
        CHECK(usage.input_tokens_details == json::parse(R"({"cached_tokens":2})").as_object());
        REQUIRE(usage.tool_calls_details);
        CHECK(usage.tool_calls_details->at("web_search").at("invocation") == 2);
        CHECK(usage.tool_calls_details->at("fetch_url").at("invocation") == 1);
        CHECK(usage.cost == px::ResponseCost{.currency = "USD",
                                             .input_cost = 0.25,
                                             .output_cost = 0.5,
                                             .total_cost = 1.0,
                                             .cache_creation_cost = 0.125,
                                             .cache_read_cost = 0.0625,
                                             .tool_calls_cost = 0.015625});
        check_round_trip(response);
    }

    TEST_CASE("kept JSON owns its memory, whichever arena the body was parsed in") {
        for (const std::string_view body : {completed_body, std::string_view(queued_body)}) {
            std::string copy(body);
            px::Response response = parsed(copy);
            copy.assign(copy.size(), ' ');
            for (const px::OutputItem& item : response.output) {
                if (const auto* other = std::get_if<px::OtherOutput>(&item)) {
                    CHECK_FALSE(other->raw.storage().is_shared());
                    CHECK(other->raw.at("type").as_string() == std::string_view(other->type));
                }
            }
            const px::Response moved = std::move(response);
            check_round_trip(moved);
        }
    }

    TEST_CASE("an item is written with its type first, and an unknown one exactly as it came") {
        const px::Response response = parsed(completed_body);
        const json::value encoded = json::value_from(response);
        const json::array& output = encoded.at("output").as_array();
        REQUIRE(output.size() == response.output.size());
        for (std::size_t i = 0; i < output.size(); ++i) {
            CAPTURE(i);
            REQUIRE(!output[i].as_object().empty());
            CHECK(output[i].as_object().begin()->key() == "type");
            CHECK(output[i].at("type").as_string() == px::output_type(response.output[i]));
        }
        CHECK(output[2] == json::parse(completed_body).at("output").at(2));
        CHECK(output[5] == json::parse(completed_body).at("output").at(5));
    }

    TEST_CASE("output_text joins only the output_text parts of message items, in order") {
        CHECK(parsed(completed_body).output_text() ==
              "The Milky Way is about 100,000 light years across. Truly.");
        // Text outside a message item, or in another kind of part, is not the answer.
        const px::Response response = parsed(body_with_output(R"([
            {"type": "message", "content": [{"type": "output_text", "text": "a"}, {"type": "reasoning", "text": "no"}]},
            {"type": "mcp_call", "text": "no", "content": [{"type": "output_text", "text": "no"}]},
            {"type": "message", "content": []},
            {"type": "message"},
            {"type": "message", "content": [{"type": "output_text", "text": "b"}, {"type": "output_text"}, {"type": "output_text", "text": "c"}]}
        ])"));
        CHECK(response.output_text() == "abc");
        CHECK(item_as<px::OutputMessage>(response, 0).text() == "a");
        CHECK(item_as<px::OutputMessage>(response, 3).content.empty());
        check_round_trip(response);

        px::Response built;
        built.output.emplace_back(
            px::OutputMessage{.content = {{.text = "x"}, {.type = "refusal", .text = "y"}}});
        built.output.emplace_back(px::FunctionCall{.call_id = "c", .name = "f", .arguments = "{}"});
        built.output.emplace_back(px::OutputMessage{.content = {{.text = "z"}}});
        CHECK(built.output_text() == "xz");
    }

    TEST_CASE("function_calls and search_results collect across items, in order") {
        const px::Response response = parsed(body_with_output(R"([
            {"type": "search_results", "results": [{"title": "A", "url": "https://a.example"}]},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "message", "content": []},
            {"type": "search_results", "results": [{"title": "B", "url": "https://b.example"},
                                                   {"title": "C", "url": "https://c.example"}]},
            {"type": "search_results"},
            {"type": "function_call", "call_id": "call_2", "name": "g", "arguments": "{\"x\":1}"}
        ])"));
        const std::vector<const px::FunctionCall*> calls = response.function_calls();
        REQUIRE(calls.size() == 2);
        CHECK(calls[0]->call_id == "call_1");
        CHECK(calls[0]->name == "f");
        CHECK_FALSE(calls[0]->id);
        CHECK(calls[1]->call_id == "call_2");
        CHECK(json::parse(calls[1]->arguments) == json::parse(R"({"x":1})"));
        CHECK(calls[0] == &item_as<px::FunctionCall>(response, 1));

        const std::vector<const px::SearchResult*> results = response.search_results();
        REQUIRE(results.size() == 3);
        CHECK(results[0]->title == "A");
        CHECK(results[1]->title == "B");
        CHECK(results[2]->url == "https://c.example");
        CHECK(item_as<px::SearchResultsOutput>(response, 4).results.empty());
        CHECK(item_as<px::SearchResultsOutput>(response, 4).queries.empty());
        check_round_trip(response);
    }

    TEST_CASE("a failed response, with its error code as a number or as a string") {
        const px::Response response = parsed(body_with(
            R"({"status": "failed", "error": {"message": "the model failed", "code": 500, "type": "server_error"}})"));
        CHECK(response.status == px::ResponseStatus::failed);
        CHECK(response.is_final());
        CHECK(response.error ==
              px::ResponseError{.message = "the model failed", .code = "500", .type = "server_error"});
        CHECK(response.output_text().empty());
        check_round_trip(response);

        const px::Response named = parsed(
            body_with(R"({"status": "failed", "error": {"message": "slow down", "code": "rate_limited"}})"));
        CHECK(named.error == px::ResponseError{.message = "slow down", .code = "rate_limited"});
        check_round_trip(named);

        const px::Response bare =
            parsed(body_with(R"({"status": "failed", "error": {"message": "m", "code": null}})"));
        CHECK(bare.error == px::ResponseError{.message = "m"});
        CHECK(json::value_from(*bare.error) == json::parse(R"({"message":"m"})"));

        CHECK(parsed(body_with(R"({"error": {"message": "m", "code": -7}})")).error->code == "-7");
        CHECK(parsed(body_with(R"({"error": {"message": "m", "code": 18446744073709551615}})")).error->code ==
              "18446744073709551615");
    }

    TEST_CASE("a cancelled response") {
        const px::Response response =
            parsed(body_with(R"({"status": "cancelled", "error": {"message": "cancelled by the user"}})"));
        CHECK(response.status == px::ResponseStatus::cancelled);
        CHECK(response.status_text == "cancelled");
        CHECK(response.is_final());
        CHECK(response.error == px::ResponseError{.message = "cancelled by the user"});
        check_round_trip(response);
    }

    TEST_CASE("requires_action waits for the output of a function call") {
        const px::Response response = parsed(body_with(R"({"status": "requires_action", "output": [
            {"type": "function_call", "id": "fc_9", "call_id": "call_9", "name": "lookup_order",
             "arguments": "{\"order\":\"A-1\"}", "status": "completed"}]})"));
        CHECK(response.status == px::ResponseStatus::requires_action);
        CHECK(response.is_final());
        REQUIRE(response.function_calls().size() == 1);
        CHECK(response.function_calls()[0]->call_id == "call_9");
        CHECK(response.function_calls()[0]->name == "lookup_order");
        CHECK(json::parse(response.function_calls()[0]->arguments).at("order") == "A-1");
        CHECK(response.output_text().empty());
        check_round_trip(response);
    }

    TEST_CASE("an incomplete response keeps its incomplete_details") {
        const px::Response response = parsed(body_with(R"({"status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "cut sh"}]}]})"));
        CHECK(response.status == px::ResponseStatus::incomplete);
        CHECK(response.is_final());
        CHECK(response.incomplete_details == json::parse(R"({"reason":"max_output_tokens"})").as_object());
        CHECK(response.output_text() == "cut sh");
        check_round_trip(response);
    }

    TEST_CASE("an unknown status is kept as text and written back as it came") {
        const px::Response response = parsed(body_with(R"({"status": "paused_for_review"})"));
        CHECK(response.status == px::ResponseStatus::unknown);
        CHECK(response.status_text == "paused_for_review");
        CHECK_FALSE(response.is_final());
        CHECK(json::value_from(response).at("status") == "paused_for_review");
        check_round_trip(response);

        // Spelling is exact.
        CHECK(parsed(body_with(R"({"status": "COMPLETED"})")).status == px::ResponseStatus::unknown);
        // Built in code, with no text: the parsed status is written.
        px::Response built{.id = "resp_x", .status = px::ResponseStatus::cancelled};
        CHECK(json::value_from(built).at("status") == "cancelled");
        CHECK(parsed(px::to_json_string(built)).status == px::ResponseStatus::cancelled);
    }

    TEST_CASE("usage without cost or details, and cost without its optional members") {
        const px::Response response =
            parsed(body_with(R"({"usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}})"));
        CHECK(response.usage == px::ResponseUsage{.input_tokens = 1, .output_tokens = 2, .total_tokens = 3});
        check_round_trip(response);

        const px::Response costed = parsed(body_with(R"({"usage": {"input_tokens": 1, "output_tokens": 2,
            "total_tokens": 3, "cost": {"input_cost": 1, "output_cost": 2, "total_cost": 3}}})"));
        REQUIRE(costed.usage);
        CHECK(costed.usage->cost ==
              px::ResponseCost{.currency = "USD", .input_cost = 1, .output_cost = 2, .total_cost = 3});
        CHECK(json::value_from(*costed.usage->cost) ==
              json::parse(R"({"currency":"USD","input_cost":1.0,"output_cost":2.0,"total_cost":3.0})"));
        check_round_trip(costed);
    }

    TEST_CASE("unknown members are ignored, at the top and inside items") {
        const px::Response response = parsed(body_with(R"({
            "instructions": "be brief", "temperature": 0.2, "tools": [{"type": "web_search"}],
            "reasoning": {"effort": "high"}, "output_text": "what the SDK adds",
            "output": [{"type": "message", "id": "m", "phase": 2, "content": [
                {"type": "output_text", "text": "t", "logprobs": [], "annotations": [{"url": "u", "extra": {}}]}]},
                {"type": "function_call", "call_id": "c", "name": "n", "arguments": "{}", "extra": [1]}],
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2, "speed": "fast"},
            "error": {"message": "m", "details": {"a": 1}}})"));
        CHECK(response.output_text() == "t");
        CHECK(item_as<px::OutputMessage>(response, 0).content[0].annotations[0] ==
              px::Annotation{.url = "u"});
        CHECK(item_as<px::FunctionCall>(response, 1).name == "n");
        CHECK(response.usage->total_tokens == 2);
        CHECK(response.error == px::ResponseError{.message = "m"});
        const json::value encoded = json::value_from(response);
        CHECK_FALSE(encoded.as_object().contains("instructions"));
        CHECK_FALSE(encoded.as_object().contains("output_text"));
        CHECK_FALSE(encoded.at("output").at(0).as_object().contains("phase"));
        check_round_trip(response);
    }

    TEST_CASE("a missing or null required member is an error at its path, the id kept when named") {
        for (const std::string_view member : {"id", "status", "object", "created_at", "model", "output"}) {
            CAPTURE(member);
            const std::string missing = body_with("{\"" + std::string(member) + "\": null}");
            const px::Error error = decode_error(missing);
            CHECK(error.json_path == "$." + std::string(member));
            CHECK(error.message.find("required field is missing") != std::string::npos);
            CHECK(error.message.find("response") != std::string::npos);
            if (member != "id") {
                CHECK(error.job_id == "resp_base");
            } else {
                CHECK_FALSE(error.job_id);
            }

            json::object with_null = json::parse(body_with()).as_object();
            with_null[member] = nullptr;
            const px::Error null_error = decode_error(json::serialize(with_null));
            CHECK(null_error.json_path == "$." + std::string(member));
            CHECK(null_error.message.find("required field is null") != std::string::npos);
        }
    }

    TEST_CASE("a member of the wrong type is an error at its exact path") {
        struct Case {
            std::string_view members;
            std::string_view path;
        };
        for (
            const Case& c : std::initializer_list<Case>{
                {R"({"id": 7})", "$.id"},
                {R"({"status": 3})", "$.status"},
                {R"({"created_at": "yesterday"})", "$.created_at"},
                {R"({"created_at": 1.5})", "$.created_at"},
                {R"({"created_at": 9223372036854775808})", "$.created_at"},
                {R"({"model": ["a"]})", "$.model"},
                {R"({"object": {}})", "$.object"},
                {R"({"output": {}})", "$.output"},
                {R"({"background": "yes"})", "$.background"},
                {R"({"store": 1})", "$.store"},
                {R"({"previous_response_id": 1})", "$.previous_response_id"},
                {R"({"incomplete_details": "max_output_tokens"})", "$.incomplete_details"},
                {R"({"error": "boom"})", "$.error"},
                {R"({"error": {"code": 1}})", "$.error.message"},
                {R"({"error": {"message": "m", "code": true}})", "$.error.code"},
                {R"({"error": {"message": "m", "code": 1.5}})", "$.error.code"},
                {R"({"error": {"message": "m", "type": 4}})", "$.error.type"},
                {R"({"usage": {"input_tokens": 1, "output_tokens": 2}})", "$.usage.total_tokens"},
                {R"({"usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": "3"}})",
                 "$.usage.total_tokens"},
                {R"({"usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                      "cost": {"input_cost": 1, "output_cost": 1}}})",
                 "$.usage.cost.total_cost"},
                {R"({"usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                      "tool_calls_details": []}})",
                 "$.usage.tool_calls_details"},
                {R"({"output": [{"type": "message", "content": []},
                                 {"type": "message", "content": [{"type": "output_text", "text": 7}]}]})",
                 "$.output[1].content[0].text"},
                {R"({"output": [{"type": "message", "content": [{"text": "t"}]}]})",
                 "$.output[0].content[0].type"},
                {R"({"output": [{"type": "message", "content": "t"}]})", "$.output[0].content"},
                {R"({"output": [{"type": "message", "content": [{"type": "output_text", "text": "t",
                      "annotations": [{"start_index": "0"}]}]}]})",
                 "$.output[0].content[0].annotations[0].start_index"},
                {R"({"output": [{"type": "message", "role": 1}]})", "$.output[0].role"},
                {R"({"output": [{"type": "search_results", "results": [{"title": "t", "url": "u"}, {"title": "t"}]}]})",
                 "$.output[0].results[1].url"},
                {R"({"output": [{"type": "search_results", "queries": [1]}]})", "$.output[0].queries[0]"},
                {R"({"output": [{"type": "fetch_url_results", "contents": [{"title": "t"}]}]})",
                 "$.output[0].contents[0].url"},
                {R"({"output": [{"type": "function_call", "name": "f", "arguments": "{}"}]})",
                 "$.output[0].call_id"},
                {R"({"output": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]})",
                 "$.output[0].arguments"},
                {R"({"output": [{"type": "message"}, {"id": "x"}]})", "$.output[1].type"},
                {R"({"output": [{"type": "message"}, {"type": "message"}, {"type": 3}]})",
                 "$.output[2].type"},
                {R"({"output": [{"type": null}]})", "$.output[0].type"},
                {R"({"output": ["message"]})", "$.output[0]"},
            }) {
            CAPTURE(c.members);
            const px::Error error = decode_error(body_with(c.members));
            CHECK(error.json_path == c.path);
            if (c.path == "$.id") {
                CHECK_FALSE(error.job_id);
            } else {
                CHECK(error.job_id == "resp_base");
            }
        }
        const px::Error untyped = decode_error(body_with(R"({"output": [{"id": "x"}]})"));
        CHECK(untyped.message.find("\"type\"") != std::string::npos);
    }

    TEST_CASE("a number too large for a double is an error where it stands") {
        const px::Error error = decode_error(
            R"({"id":"resp_1","object":"response","created_at":1,"model":"m","status":"completed","output":[],)"
            R"("usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2,)"
            R"("cost":{"input_cost":1,"output_cost":1,"total_cost":1e999}}})");
        CHECK(error.json_path == "$.usage.cost.total_cost");
        CHECK(error.job_id == "resp_1");

        // JSON kept as sent could not be written back (Boost.JSON writes infinity as `Infinity`).
        const std::string head =
            R"({"id":"resp_1","object":"response","created_at":1,"model":"m","status":"completed",)";
        CHECK(
            decode_error(head + R"("output":[{"type":"message"},{"type":"mcp_call","out":{"n":[1,2e900]}}]})")
                .json_path == "$.output[1].out.n[1]");
        CHECK(decode_error(head + R"("output":[],"incomplete_details":{"reason":-1e999}})").json_path ==
              "$.incomplete_details.reason");
        const std::string usage =
            R"("output":[],"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2,)";
        CHECK(decode_error(head + usage + R"("input_tokens_details":{"cached":1e400}}})").json_path ==
              "$.usage.input_tokens_details.cached");
        CHECK(decode_error(head + usage + R"("tool_calls_details":{"web_search":{"invocation":1e400}}}})")
                  .json_path == "$.usage.tool_calls_details.web_search.invocation");
        // Large but finite numbers are kept as they are.
        const px::Response kept = parsed(head + R"("output":[{"type":"mcp_call","out":1e300}]})");
        CHECK(std::get<px::OtherOutput>(kept.output[0]).raw.at("out") == 1e300);
        check_round_trip(kept);
    }

    TEST_CASE("text that is not a response object is an error at the root") {
        for (const std::string_view body :
             {"", "not json", "{\"id\": ", "{\"id\":\"resp_1\"} trailing", "\xff"}) {
            CAPTURE(body);
            const px::Error error = decode_error(body);
            CHECK(error.json_path == "$");
            CHECK(error.cause);
            CHECK(error.message.find("not valid JSON") != std::string::npos);
        }
        for (const std::string_view body : {"[]", "null", "\"resp_1\"", "42"}) {
            CAPTURE(body);
            const px::Error error = decode_error(body);
            CHECK(error.json_path == "$");
            CHECK_FALSE(error.cause);
        }
        CHECK(decode_error(std::string(100, '[') + std::string(100, ']')).json_path == "$");
    }

    TEST_CASE("status helpers") {
        using S = px::ResponseStatus;
        const std::initializer_list<S> all{S::queued,    S::in_progress,     S::completed,  S::failed,
                                           S::cancelled, S::requires_action, S::incomplete, S::unknown};
        for (const S status : all) {
            CAPTURE(px::to_string(status));
            const bool running = status == S::queued || status == S::in_progress || status == S::unknown;
            CHECK(px::is_final(status) == !running);
            CHECK(px::response_status_from_string(px::to_string(status)) == status);
            CHECK_FALSE(px::is_earlier(status, status));
            CHECK_FALSE(px::is_earlier(status, S::unknown));
            CHECK_FALSE(px::is_earlier(S::unknown, status));
            px::Response response{.status = status};
            CHECK(response.is_final() == px::is_final(status));
        }
        CHECK(px::to_string(S::in_progress) == "in_progress");
        CHECK(px::to_string(S::requires_action) == "requires_action");
        CHECK(px::to_string(S::unknown) == "unknown");
        CHECK(px::response_status_from_string("") == S::unknown);
        CHECK(px::response_status_from_string("Queued") == S::unknown);
        CHECK(px::response_status_from_string("in-progress") == S::unknown);

        CHECK(px::is_earlier(S::queued, S::in_progress));
        const std::initializer_list<S> finals{S::completed, S::failed, S::cancelled, S::requires_action,
                                              S::incomplete};
        for (const S final : finals) {
            CAPTURE(px::to_string(final));
            CHECK(px::is_earlier(S::queued, final));
            CHECK(px::is_earlier(S::in_progress, final));
            CHECK_FALSE(px::is_earlier(final, S::queued));
            CHECK_FALSE(px::is_earlier(final, S::in_progress));
            for (const S other : finals) {
                CHECK_FALSE(px::is_earlier(final, other));
            }
        }
        CHECK_FALSE(px::is_earlier(S::in_progress, S::queued));
        static_assert(px::is_earlier(S::queued, S::completed));
        static_assert(px::is_final(S::requires_action));
    }

    TEST_CASE("the cancel acknowledgement") {
        const auto acknowledgement = px::parse_cancel_acknowledgement(
            R"({"response_id": "resp_7", "status": "cancelling", "extra": 1})");
        REQUIRE(acknowledgement.has_value());
        CHECK(*acknowledgement == px::CancelAcknowledgement{.response_id = "resp_7", .status = "cancelling"});
        CHECK(json::value_from(*acknowledgement) ==
              json::parse(R"({"response_id":"resp_7","status":"cancelling"})"));

        const auto missing = px::parse_cancel_acknowledgement(R"({"status": "cancelling"})");
        REQUIRE_FALSE(missing.has_value());
        CHECK(missing.error().kind == px::ErrorKind::decode);
        CHECK(missing.error().json_path == "$.response_id");
        CHECK(missing.error().message.find("cancel acknowledgement") != std::string::npos);

        const auto mistyped = px::parse_cancel_acknowledgement(R"({"response_id": "resp_7", "status": 1})");
        REQUIRE_FALSE(mistyped.has_value());
        CHECK(mistyped.error().json_path == "$.status");

        const auto garbage = px::parse_cancel_acknowledgement("<html>");
        REQUIRE_FALSE(garbage.has_value());
        CHECK(garbage.error().json_path == "$");
    }

    TEST_CASE("an error envelope's param is kept and shown") {
        px::Error error{
            .kind = px::ErrorKind::http_status, .message = "the request was refused", .http_status = 400};
        px::detail::read_error_body(
            R"({"error": {"message": "invalid request body: json: unknown field \"bogus\"", "type": "invalid_request", "code": 400, "param": "bogus"}})",
            error);
        CHECK(error.api_param == "bogus");
        CHECK(error.api_type == "invalid_request");
        CHECK(error.api_message == "invalid request body: json: unknown field \"bogus\"");
        CHECK(error.body_excerpt.empty());
        std::ostringstream printed;
        printed << error;
        CAPTURE(printed.str());
        CHECK(printed.str().find("[param bogus]") != std::string::npos);
        CHECK(printed.str().find("HTTP 400") != std::string::npos);
        CHECK(printed.str().find("unknown field \"bogus\"") != std::string::npos);
        CHECK(px::to_string(error) == printed.str());

        px::Error without{.kind = px::ErrorKind::http_status, .http_status = 400};
        px::detail::read_error_body(R"({"error": {"message": "m", "type": "t", "param": null}})", without);
        CHECK(without.api_param.empty());
        CHECK(px::to_string(without).find("param") == std::string::npos);

        px::Error numbered{.kind = px::ErrorKind::http_status, .http_status = 400};
        px::detail::read_error_body(R"({"error": {"message": "m", "param": 3}})", numbered);
        CHECK(numbered.api_param == "3");

        px::Error unsafe{.kind = px::ErrorKind::http_status, .http_status = 400};
        px::detail::read_error_body(R"({"error": {"message": "m", "param": "a\nb\u0000c"}})", unsafe);
        CHECK(unsafe.api_param == "a b c");
    }
}

}  // namespace response_model_tests
