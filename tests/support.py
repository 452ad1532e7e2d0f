"""Constants shared by test modules (imported as `support`; conftest modules are not importable by name
when pytest collects several directories that each have one)."""

FAKE_API_KEY = "sk-ant-test-0123456789abcdef"
