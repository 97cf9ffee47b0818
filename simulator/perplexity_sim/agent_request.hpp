// The Agent API's create body (POST /v1/responses): parsed and validated as strictly as the real service,
// which decodes into Go structs that refuse unknown fields. Pure logic, no I/O.
#pragma once

#include <boost/json.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace perplexity_sim::detail {

// What the response store needs from a valid create; the raw body is not kept.
struct AgentRequest {
    std::string model;     // the model that serves it: `model`, the first of `models`, or the preset's
    std::string question;  // the input string, or the text of the last user message
    std::size_t prompt_chars = 0;
    bool background = false;
    std::optional<bool> store;
    std::optional<std::string> previous_response_id;
    bool web_search = false;                   // a web_search tool was offered
    std::optional<std::string> function_name;  // the first function tool offered
    bool continuation = false;                 // the input carries a function_call_output item
};

// A 400 of the create: the message, and the field it is about (empty: none named).
struct RequestProblem {
    std::string message;
    std::string param;
};

// The model a preset runs on; also the list of accepted presets.
inline std::optional<std::string_view> preset_model(std::string_view preset) {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 6> presets{{
        {"fast", "perplexity/sonar"},
        {"low", "openai/gpt-5-mini"},
        {"medium", "openai/gpt-5.1"},
        {"high", "openai/gpt-5.1"},
        {"xhigh", "anthropic/claude-opus-4-5"},
        {"deep-research", "openai/gpt-5.1"},  // the older name of medium
    }};
    for (const auto& [name, model] : presets) {
        if (name == preset) {
            return model;
        }
    }
    return std::nullopt;
}

class AgentRequestParser {
  public:
    static std::variant<AgentRequest, RequestProblem> parse(std::string_view body) {
        boost::system::error_code ec;
        const boost::json::value document = boost::json::parse(body, ec);
        if (ec) {
            return RequestProblem{"invalid request body: " + ec.message(), ""};
        }
        if (!document.is_object()) {
            return RequestProblem{
                "invalid request body: json: cannot unmarshal " + kind(document) + " into a request object",
                ""};
        }
        try {
            AgentRequestParser parser;
            parser.parse_root(document.as_object());
            return std::move(parser.request_);
        } catch (const Rejected& rejected) {
            return rejected.problem;
        }
    }

  private:
    struct Rejected {
        RequestProblem problem;
    };

    [[noreturn]] static void reject(std::string message, std::string_view param) {
        throw Rejected{{std::move(message), std::string(param)}};
    }

    static std::string kind(const boost::json::value& value) {
        if (value.is_string()) {
            return "string";
        }
        if (value.is_bool()) {
            return "bool";
        }
        if (value.is_number()) {
            return "number";
        }
        if (value.is_array()) {
            return "array";
        }
        if (value.is_object()) {
            return "object";
        }
        return "null";
    }

    [[noreturn]] static void wrong_type(std::string_view field, const boost::json::value& value,
                                        std::string_view expected) {
        reject("invalid request body: json: cannot unmarshal " + kind(value) + " into field \"" +
                   std::string(field) + "\" of type " + std::string(expected),
               field);
    }

    // Every key of `object` must be one of `known`.
    static void only(const boost::json::object& object, std::initializer_list<std::string_view> known) {
        for (const auto& entry : object) {
            bool found = false;
            for (const auto name : known) {
                found = found || entry.key() == name;
            }
            if (!found) {
                const std::string key(entry.key());
                reject("invalid request body: json: unknown field \"" + key + "\"", key);
            }
        }
    }

    // The typed getters: absent or null gives nothing, a value of another type is a 400.
    static const boost::json::value* present(const boost::json::object& object, std::string_view field) {
        const auto* value = object.if_contains(field);
        return value == nullptr || value->is_null() ? nullptr : value;
    }

    static std::optional<std::string> string_field(const boost::json::object& object,
                                                   std::string_view field) {
        const auto* value = present(object, field);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_string()) {
            wrong_type(field, *value, "string");
        }
        return std::string(value->as_string());
    }

    static std::string required_string(const boost::json::object& object, std::string_view field) {
        auto text = string_field(object, field);
        if (!text) {
            reject(std::string(field) + " is required", field);
        }
        return std::move(*text);
    }

    static std::optional<bool> bool_field(const boost::json::object& object, std::string_view field) {
        const auto* value = present(object, field);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_bool()) {
            wrong_type(field, *value, "bool");
        }
        return value->as_bool();
    }

    static std::optional<double> number_field(const boost::json::object& object, std::string_view field) {
        const auto* value = present(object, field);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_number()) {
            wrong_type(field, *value, "number");
        }
        return value->to_number<double>();
    }

    static std::optional<std::int64_t> integer_field(const boost::json::object& object,
                                                     std::string_view field) {
        const auto* value = present(object, field);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (value->is_int64()) {
            return value->as_int64();
        }
        if (value->is_uint64()) {
            return std::numeric_limits<std::int64_t>::max();
        }
        wrong_type(field, *value, "int");
    }

    static const boost::json::object* object_field(const boost::json::object& object,
                                                   std::string_view field) {
        const auto* value = present(object, field);
        if (value == nullptr) {
            return nullptr;
        }
        if (!value->is_object()) {
            wrong_type(field, *value, "object");
        }
        return &value->as_object();
    }

    static const boost::json::array* array_field(const boost::json::object& object, std::string_view field) {
        const auto* value = present(object, field);
        if (value == nullptr) {
            return nullptr;
        }
        if (!value->is_array()) {
            wrong_type(field, *value, "array");
        }
        return &value->as_array();
    }

    static const boost::json::object& element_object(const boost::json::value& value,
                                                     std::string_view field) {
        if (!value.is_object()) {
            wrong_type(field, value, "object");
        }
        return value.as_object();
    }

    void parse_root(const boost::json::object& root) {
        only(root, {"input", "model", "models", "preset", "background", "instructions", "language_preference",
                    "max_output_tokens", "max_steps", "previous_response_id", "reasoning", "response_format",
                    "store", "stream", "temperature", "top_p", "tools"});

        const auto* input = present(root, "input");
        if (input == nullptr) {
            reject("input is required", "input");
        }
        if (input->is_string()) {
            request_.question = std::string(input->as_string());
            request_.prompt_chars = request_.question.size();
        } else if (input->is_array()) {
            if (input->as_array().empty()) {
                reject("input must not be empty", "input");
            }
            for (const auto& item : input->as_array()) {
                parse_input_item(element_object(item, "input"));
            }
        } else {
            wrong_type("input", *input, "string or array");
        }

        const auto model = string_field(root, "model");
        std::optional<std::string> first_model;
        if (const auto* models = array_field(root, "models")) {
            if (models->empty() || models->size() > 5) {
                reject("models must list 1 to 5 models", "models");
            }
            for (const auto& entry : *models) {
                if (!entry.is_string()) {
                    wrong_type("models", entry, "string");
                }
            }
            first_model = std::string(models->front().as_string());
        }
        std::optional<std::string_view> preset_served_by;
        if (const auto preset = string_field(root, "preset")) {
            preset_served_by = preset_model(*preset);
            if (!preset_served_by) {
                reject("unknown preset \"" + *preset + "\"", "preset");
            }
            // Served as bringing web search among its own tools, as Perplexity's presets are search
            // presets: its answer has sources whether or not the request offers the tool again.
            request_.web_search = true;
        }
        if (model) {
            request_.model = *model;
        } else if (first_model) {
            request_.model = *first_model;
        } else if (preset_served_by) {
            request_.model = std::string(*preset_served_by);
        } else {
            reject("one of model, models or preset is required", "model");
        }

        request_.background = bool_field(root, "background").value_or(false);
        if (bool_field(root, "stream").value_or(false) && request_.background) {
            reject("stream cannot be combined with background", "stream");
        }
        string_field(root, "instructions");
        string_field(root, "language_preference");
        if (const auto tokens = integer_field(root, "max_output_tokens"); tokens && *tokens < 1) {
            reject("max_output_tokens must be at least 1", "max_output_tokens");
        }
        if (const auto steps = integer_field(root, "max_steps"); steps && (*steps < 1 || *steps > 100)) {
            reject("max_steps must be between 1 and 100", "max_steps");
        }
        request_.previous_response_id = string_field(root, "previous_response_id");
        if (const auto* reasoning = object_field(root, "reasoning")) {
            only(*reasoning, {"effort"});
            if (const auto effort = string_field(*reasoning, "effort")) {
                static constexpr std::array<std::string_view, 5> efforts{"minimal", "low", "medium", "high",
                                                                         "xhigh"};
                bool known = false;
                for (const auto name : efforts) {
                    known = known || name == *effort;
                }
                if (!known) {
                    reject("unknown reasoning effort \"" + *effort + "\"", "effort");
                }
            }
        }
        if (const auto* format = object_field(root, "response_format")) {
            only(*format, {"type", "json_schema"});
            string_field(*format, "type");
            object_field(*format, "json_schema");  // a JSON schema: free-form below this point
        }
        request_.store = bool_field(root, "store");
        number_field(root, "temperature");
        number_field(root, "top_p");
        if (const auto* tools = array_field(root, "tools")) {
            for (const auto& tool : *tools) {
                parse_tool(element_object(tool, "tools"));
            }
        }
    }

    void parse_input_item(const boost::json::object& item) {
        std::string type = string_field(item, "type").value_or("");
        if (type.empty() && item.contains("role")) {
            type = "message";  // the short form of a message item
        }
        if (type == "message") {
            only(item, {"type", "role", "content"});
            const std::string role = required_string(item, "role");
            if (role != "user" && role != "assistant" && role != "system" && role != "developer") {
                reject("unknown role \"" + role + "\"", "role");
            }
            const auto* content = present(item, "content");
            if (content == nullptr) {
                reject("content is required", "content");
            }
            std::string text;
            if (content->is_string()) {
                text = std::string(content->as_string());
            } else if (content->is_array()) {
                for (const auto& part : content->as_array()) {
                    append_part_text(element_object(part, "content"), text);
                }
            } else {
                wrong_type("content", *content, "string or array");
            }
            request_.prompt_chars += text.size();
            if (role == "user") {
                request_.question = std::move(text);
            }
        } else if (type == "function_call_output") {
            only(item, {"type", "call_id", "output", "name"});
            required_string(item, "call_id");
            request_.prompt_chars += required_string(item, "output").size();
            string_field(item, "name");
            request_.continuation = true;
        } else if (type == "function_call") {
            only(item, {"type", "call_id", "name", "arguments", "id", "status"});
            required_string(item, "call_id");
            required_string(item, "name");
            request_.prompt_chars += required_string(item, "arguments").size();
            string_field(item, "id");
            string_field(item, "status");
        } else if (type.empty()) {
            reject("type is required", "type");
        } else {
            reject("unknown input item type \"" + type + "\"", "type");
        }
    }

    static void append_part_text(const boost::json::object& part, std::string& text) {
        const std::string type = required_string(part, "type");
        if (type == "input_text") {
            only(part, {"type", "text"});
            if (!text.empty()) {
                text.push_back(' ');
            }
            text += required_string(part, "text");
        } else if (type == "input_image") {
            only(part, {"type", "image_url"});
            required_string(part, "image_url");
        } else {
            reject("unknown content part type \"" + type + "\"", "type");
        }
    }

    void parse_tool(const boost::json::object& tool) {
        const std::string type = required_string(tool, "type");
        if (type == "web_search") {
            only(tool, {"type", "filters", "search_context_size", "user_location", "max_tokens",
                        "max_tokens_per_page"});
            if (const auto* filters = object_field(tool, "filters")) {
                only(*filters, {"search_domain_filter", "search_recency_filter", "search_after_date_filter",
                                "search_before_date_filter", "last_updated_after_filter",
                                "last_updated_before_filter"});
                array_field(*filters, "search_domain_filter");
                string_field(*filters, "search_recency_filter");
                string_field(*filters, "search_after_date_filter");
                string_field(*filters, "search_before_date_filter");
                string_field(*filters, "last_updated_after_filter");
                string_field(*filters, "last_updated_before_filter");
            }
            string_field(tool, "search_context_size");
            object_field(tool, "user_location");  // free-form
            integer_field(tool, "max_tokens");
            integer_field(tool, "max_tokens_per_page");
            request_.web_search = true;
        } else if (type == "fetch_url") {
            only(tool, {"type", "max_urls"});
            integer_field(tool, "max_urls");
        } else if (type == "function") {
            only(tool, {"type", "name", "description", "parameters", "strict"});
            std::string name = required_string(tool, "name");
            if (is_builtin_tool(name)) {
                reject("function name \"" + name + "\" collides with a built-in tool", "name");
            }
            string_field(tool, "description");
            object_field(tool, "parameters");  // a JSON schema: free-form
            bool_field(tool, "strict");
            if (!request_.function_name) {
                request_.function_name = std::move(name);
            }
        } else if (!is_builtin_tool(type)) {
            reject("unknown tool type \"" + type + "\"", "type");
        }
        // people_search, finance_search, sandbox and mcp are not modelled: accepted as sent.
    }

    static bool is_builtin_tool(std::string_view name) {
        static constexpr std::array<std::string_view, 6> builtins{
            "web_search", "fetch_url", "sandbox", "people_search", "finance_search", "mcp"};
        for (const auto builtin : builtins) {
            if (builtin == name) {
                return true;
            }
        }
        return false;
    }

    AgentRequest request_;
};

}  // namespace perplexity_sim::detail
