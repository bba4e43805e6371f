fn main() {
    println!("{}", sessiongate_api::openapi::openapi_json_text());
}
