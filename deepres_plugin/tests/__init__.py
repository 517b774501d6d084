"""Tests of DeepRes: fast core tests on small synthetic maps with known answers (pytest),
and Scipion end-to-end tests (pytest, or ``scipion tests deepres_plugin.tests``)."""
