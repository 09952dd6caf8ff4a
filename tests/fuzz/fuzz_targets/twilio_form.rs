#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| utalk_fuzz::twilio_form(data));
